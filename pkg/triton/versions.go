package triton

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Release is one row of the Triton container release → TensorRT table.
type Release struct {
	From, To string // Triton container releases, YY.MM, inclusive ("" To: and later)
	Variant  string // "py3" (the stock image) or "trtllm-python-py3"
	TensorRT string // version shipped: "10.3.0.26"; major (or major.minor) only where no stored source pins it
	Source   string // where the row comes from
}

const (
	relNotes  = "NVIDIA Triton release notes rel-%s.html, table \"NVIDIA Triton Inference Server Container Versions\" (docs.nvidia.com/deeplearning/triton-inference-server/release-notes/)"
	compatDoc = "triton-inference-server/server docs/introduction/compatibility.md@r26.08, \"Container Name: trtllm-python-py3\""
)

func notes(rel string) string { return fmt.Sprintf(relNotes, strings.ReplaceAll(rel, ".", "-")) }

// Releases maps Triton container releases to the TensorRT they ship. An
// engine runs only under the TensorRT major.minor that built it, so this
// is what decides which image can load a repository's tensorrt_plan.
var Releases = []Release{
	{"23.08", "24.01", "py3", "8.6.1.6", notes("23.08")},
	{"24.02", "24.04", "py3", "8.6.3", notes("24.02")},
	{"24.05", "24.05", "py3", "10.0.1.6", notes("24.05") + "; tensorrt_backend CMakeLists.txt@r24.05 defaults TRT_VERSION to 10.0.1.6"},
	{"24.06", "24.06", "py3", "10.1.0.27", notes("24.06")},
	{"24.07", "24.07", "py3", "10.2.0.19", notes("24.07")},
	{"24.08", "24.08", "py3", "10.3.0.26", notes("24.08")},
	{"24.09", "24.09", "py3", "10.4.0.26", notes("24.09")},
	{"24.10", "24.10", "py3", "10.5.0.18", notes("24.10")},
	{"24.11", "24.11", "py3", "10.6.0.26", notes("24.11")},
	{"24.12", "24.12", "py3", "10.7.0.23", notes("24.12")},
	{"25.01", "25.02", "py3", "10.8.0.43", notes("25.01")},
	{"25.03", "25.04", "py3", "10.9.0.34", notes("25.03")},
	{"25.05", "25.05", "py3", "10.10.0.31", notes("25.05")},
	{"25.06", "25.07", "py3", "10.11.0.33", notes("25.06")},
	{"25.08", "25.08", "py3", "10.13.2.6", notes("25.08")},
	{"25.09", "25.10", "py3", "10.13.3.9", notes("25.09")},
	{"25.11", "25.12", "py3", "10.14.1.48", notes("25.11")},
	{"26.01", "26.05", "py3", "10", notes("26.01") + " (minor not pinned here: check the release notes)"},
	{"26.06", "", "py3", "11", "m3ectl's product contract (TensorRT 11.x, strongly typed only, ships with Triton 26.06 and later); " + notes("26.06")},
	{"24.04", "24.04", "trtllm-python-py3", "9.3.0", compatDoc},
	{"24.05", "24.06", "trtllm-python-py3", "10.0.1", compatDoc},
	{"24.07", "24.07", "trtllm-python-py3", "10.1.0", compatDoc},
	{"24.08", "24.08", "trtllm-python-py3", "10.3.0", compatDoc},
	{"24.09", "24.10", "trtllm-python-py3", "10.4.0", compatDoc},
	{"24.11", "24.11", "trtllm-python-py3", "10.6.0", compatDoc},
	{"24.12", "24.12", "trtllm-python-py3", "10.7.0", compatDoc},
	{"25.01", "25.02", "trtllm-python-py3", "10.8.0.43", compatDoc},
	{"25.03", "25.05", "trtllm-python-py3", "10.9.0.34", compatDoc},
	{"25.06", "25.07", "trtllm-python-py3", "10.10.0.31", compatDoc},
	{"25.08", "25.10", "trtllm-python-py3", "10.11.0.33", compatDoc},
	{"25.11", "26.02", "trtllm-python-py3", "10.13.3.9", compatDoc},
	{"26.03", "26.07", "trtllm-python-py3", "10.14.1.48", compatDoc},
}

var imageTag = regexp.MustCompile(`^(\d\d)\.(\d\d)(?:\.\d+)?-(.+)$`)

// variantOf maps an image tag suffix to the table's variant: the py3
// family (py3, py3-sdk, py3-min, py3-igpu, cpu-only-py3) shares the stock
// image's TensorRT.
func variantOf(suffix string) string {
	if strings.HasPrefix(suffix, "trtllm") {
		return "trtllm-python-py3"
	}
	return "py3"
}

// ReleaseOf finds the table row of a Triton image reference
// (nvcr.io/nvidia/tritonserver:26.06-py3).
func ReleaseOf(image string) (string, *Release, error) {
	tag := image
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		tag = image[i+1:]
	}
	if i := strings.Index(tag, "@"); i >= 0 {
		tag = tag[:i]
	}
	m := imageTag.FindStringSubmatch(tag)
	if m == nil {
		return "", nil, fmt.Errorf("cannot tell the Triton release of image %s: want a tag such as 26.06-py3", image)
	}
	rel, variant := m[1]+"."+m[2], variantOf(m[3])
	for i := range Releases {
		r := &Releases[i]
		if r.Variant == variant && rel >= r.From && (r.To == "" || rel <= r.To) {
			return rel, r, nil
		}
	}
	return rel, nil, fmt.Errorf("Triton release %s (%s) is not in m3ectl's release table", rel, variant)
}

// sameTRT says whether an engine built with TensorRT built (a.b.c) runs
// under TensorRT shipped (as precise as the table pins it).
func sameTRT(shipped, built string) bool {
	s, b := strings.Split(shipped, "."), strings.Split(built, ".")
	n := min(len(s), 2)
	if len(b) < n {
		return false
	}
	for i := 0; i < n; i++ {
		x, err1 := strconv.Atoi(s[i])
		y, err2 := strconv.Atoi(b[i])
		if err1 != nil || err2 != nil || x != y {
			return false
		}
	}
	return true
}

// ImageFor names the newest stock image whose TensorRT matches built,
// preferring rows that pin the minor version.
func ImageFor(built string) string {
	for _, pinned := range []bool{true, false} {
		if img := imageFor(built, pinned); img != "" {
			return img
		}
	}
	return ""
}

func imageFor(built string, pinned bool) string {
	for i := len(Releases) - 1; i >= 0; i-- {
		r := Releases[i]
		if r.Variant == "py3" && strings.Contains(r.TensorRT, ".") == pinned && sameTRT(r.TensorRT, built) {
			rel := r.To
			if rel == "" {
				rel = r.From
			}
			return "nvcr.io/nvidia/tritonserver:" + rel + "-py3"
		}
	}
	return ""
}

// CheckImage refuses an image whose TensorRT major.minor differs from the
// engine's (TensorRT engines are not portable across versions). engineTRT
// "" means the version is unknown (no build metadata, or no engine): the
// check is skipped with a note. force turns a refusal into a note.
func CheckImage(image, engineTRT string, force bool) (string, error) {
	if engineTRT == "" {
		return "TensorRT version of the engine unknown: image " + image + " not checked", nil
	}
	rel, r, err := ReleaseOf(image)
	if err != nil {
		if force {
			return err.Error() + " (--force: not checked)", nil
		}
		return "", fmt.Errorf("%w; --force skips the check", err)
	}
	if sameTRT(r.TensorRT, engineTRT) {
		if !strings.Contains(r.TensorRT, ".") {
			return fmt.Sprintf("image %s (Triton %s) ships TensorRT %s.x; m3ectl's table does not pin the minor version, so check that its release notes list TensorRT %s", image, rel, r.TensorRT, engineTRT), nil
		}
		return fmt.Sprintf("image %s (Triton %s) ships TensorRT %s, as the engine needs", image, rel, r.TensorRT), nil
	}
	want := ImageFor(engineTRT)
	hint := "rebuild the engine with the TensorRT of " + image
	if want != "" {
		hint = "use " + want + " or " + hint
	}
	msg := fmt.Sprintf("image %s (Triton %s) ships TensorRT %s but the engine was built with TensorRT %s: %s (--force overrides)", image, rel, r.TensorRT, engineTRT, hint)
	if force {
		return msg + " [forced]", nil
	}
	return "", fmt.Errorf("%s", msg)
}
