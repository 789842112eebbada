package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TRTVersion is a TensorRT version as trtexec's banner reports it.
type TRTVersion struct{ Major, Minor, Patch int }

// String implements fmt.Stringer.
func (v TRTVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is major.minor or newer.
func (v TRTVersion) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// IsZero reports whether the version is unknown.
func (v TRTVersion) IsZero() bool { return v == TRTVersion{} }

var bannerRE = regexp.MustCompile(`\[TensorRT v(\d{4,7})\]`)

// ParseBanner finds the "[TensorRT vNNNN]" tag of trtexec's "&&&& RUNNING"
// banner in text. TensorRT encodes 8.6.1 as 8601 (major*1000 + minor*100 +
// patch) and 10.3.0 as 100300 (major*10000 + minor*100 + patch).
func ParseBanner(text string) (TRTVersion, bool) {
	m := bannerRE.FindStringSubmatch(text)
	if m == nil {
		return TRTVersion{}, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return TRTVersion{}, false
	}
	if n >= 100000 {
		return TRTVersion{n / 10000, (n / 100) % 100, n % 100}, true
	}
	return TRTVersion{n / 1000, (n / 100) % 10, n % 100}, true
}

// ErrTrtexecNotFound is returned when no trtexec executable can be found.
var ErrTrtexecNotFound = errors.New("trtexec not found: pass --trtexec PATH, set $TRTEXEC, put it on PATH, or install TensorRT (/usr/src/tensorrt/bin/trtexec)")

// DefaultTrtexecPath is where NVIDIA's packages and containers install trtexec.
const DefaultTrtexecPath = "/usr/src/tensorrt/bin/trtexec"

// FindTrtexec resolves trtexec in this order: explicit, $TRTEXEC, PATH,
// DefaultTrtexecPath.
func FindTrtexec(explicit string) (string, error) {
	for _, c := range []string{explicit, os.Getenv("TRTEXEC")} {
		if c == "" {
			continue
		}
		p, err := exec.LookPath(c)
		if err != nil {
			return "", fmt.Errorf("trtexec %s: %w", c, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("trtexec"); err == nil {
		return p, nil
	}
	if st, err := os.Stat(DefaultTrtexecPath); err == nil && !st.IsDir() {
		return DefaultTrtexecPath, nil
	}
	return "", ErrTrtexecNotFound
}

// ProbeVersion runs "trtexec --help" and reads the version from its banner.
func ProbeVersion(ctx context.Context, trtexec string) (TRTVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, trtexec, "--help").CombinedOutput()
	if v, ok := ParseBanner(string(out)); ok {
		return v, nil
	}
	if err != nil {
		return TRTVersion{}, fmt.Errorf("run %s --help: %w", trtexec, err)
	}
	return TRTVersion{}, fmt.Errorf("%s --help printed no [TensorRT vNNNN] banner; is it trtexec?", trtexec)
}

// BuildOptions are the choices behind one trtexec engine build.
type BuildOptions struct {
	ONNX          string
	Engine        string
	Profile       *ShapeProfile
	FP16, INT8    bool
	StronglyTyped bool   // the ONNX carries its own precisions (TensorRT 10's --stronglyTyped)
	WorkspaceMiB  int    // 0: trtexec's default
	TimingCache   string // "" for none
	OptLevel      int    // builder optimisation level 0-5; -1: trtexec's default
	Extra         []string
	Version       TRTVersion
}

// ErrStronglyTypedOnly marks a precision flag TensorRT 11 no longer has.
var ErrStronglyTypedOnly = errors.New("TensorRT 11 is strongly typed only")

// BuildArgs writes the trtexec arguments for o, using only flags that
// o.Version accepts (the rules and their sources are tabled in
// docs/tensorrt-triton.md):
//   - --fp16/--int8 up to 10.x; TensorRT 11's BuildOptions::parse has none
//     of --fp16, --bf16, --int8, --best (samples/common/sampleOptions.cpp@v11.0,
//     BuildOptions::parse), so on 11 precision comes from the ONNX itself
//     (BuildEngine AutoCasts first) and these are refused here;
//   - --stronglyTyped from 10.0 (sampleOptions.cpp@v10.0.0:1201); a no-op on
//     11 (@v11.0 help: "[Deprecated] ... now enabled by default"), so not written;
//   - --memPoolSize=workspace:N with a plain number, which every version
//     reads as MiB: 8.6 parses it with std::stod (sampleOptions.cpp@v8.6.1:60),
//     10.0 multiplies a unit suffix by its byte value and then treats the
//     result as MiB again, so "1024M" is lost there (@v10.0.0:113, 1135),
//     10.3+ adds the default suffix M (@v10.3.0:1134);
//   - --skipInference from 8.6, --buildOnly before;
//   - --builderOptimizationLevel from 8.6 (refused before).
func BuildArgs(o BuildOptions) ([]string, error) {
	if o.Profile == nil || len(o.Profile.Inputs) == 0 {
		return nil, errors.New("build args: no shape profile")
	}
	v := o.Version
	if v.AtLeast(11, 0) && o.INT8 {
		return nil, fmt.Errorf("--int8: %w: its trtexec has no --int8 (sampleOptions.cpp@v11.0); quantise the ONNX with Q/DQ nodes (NVIDIA ModelOpt) and build it without --int8", ErrStronglyTypedOnly)
	}
	if v.AtLeast(11, 0) && o.FP16 {
		return nil, fmt.Errorf("--fp16: %w: build from an fp16 ONNX (m3ectl convert --fp16, which build-engine --fp16 does for you)", ErrStronglyTypedOnly)
	}
	if o.StronglyTyped && !v.AtLeast(10, 0) {
		return nil, fmt.Errorf("--strongly-typed needs TensorRT 10 or newer (trtexec --stronglyTyped); this trtexec is %s", v)
	}
	if o.StronglyTyped && (o.FP16 || o.INT8) {
		return nil, errors.New("--strongly-typed takes the precisions the ONNX carries; TensorRT 10 drops --fp16/--int8 with it (sampleOptions.cpp@v10.0.0:1202), so give one or the other")
	}
	args := []string{
		"--onnx=" + o.ONNX,
		"--saveEngine=" + o.Engine,
		"--minShapes=" + o.Profile.Spec("min"),
		"--optShapes=" + o.Profile.Spec("opt"),
		"--maxShapes=" + o.Profile.Spec("max"),
	}
	if o.FP16 {
		args = append(args, "--fp16")
	}
	if o.INT8 {
		args = append(args, "--int8")
	}
	if o.StronglyTyped && !v.AtLeast(11, 0) {
		args = append(args, "--stronglyTyped")
	}
	if o.WorkspaceMiB < 0 {
		return nil, fmt.Errorf("workspace %d MiB is negative", o.WorkspaceMiB)
	}
	if o.WorkspaceMiB > 0 {
		if v.AtLeast(8, 4) {
			args = append(args, fmt.Sprintf("--memPoolSize=workspace:%d", o.WorkspaceMiB))
		} else {
			args = append(args, fmt.Sprintf("--workspace=%d", o.WorkspaceMiB))
		}
	}
	if o.TimingCache != "" {
		args = append(args, "--timingCacheFile="+o.TimingCache)
	}
	if o.OptLevel >= 0 {
		if !v.AtLeast(8, 6) {
			return nil, fmt.Errorf("--opt-level needs TensorRT 8.6 or newer (builderOptimizationLevel); this trtexec is %s", v)
		}
		if o.OptLevel > 5 {
			return nil, fmt.Errorf("--opt-level %d: TensorRT takes 0 to 5", o.OptLevel)
		}
		args = append(args, fmt.Sprintf("--builderOptimizationLevel=%d", o.OptLevel))
	}
	if v.AtLeast(8, 6) {
		args = append(args, "--skipInference")
	} else {
		args = append(args, "--buildOnly")
	}
	return append(args, o.Extra...), nil
}

// ParseTRTVersion reads "11.1", "10.3.0" or "8.6.1".
func ParseTRTVersion(s string) (TRTVersion, error) {
	var v TRTVersion
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(s), "v"), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, fmt.Errorf("TensorRT version %q: want MAJOR.MINOR[.PATCH], e.g. 10.3 or 8.6.1", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("TensorRT version %q: want MAJOR.MINOR[.PATCH], e.g. 10.3 or 8.6.1", s)
		}
		*[]*int{&v.Major, &v.Minor, &v.Patch}[i] = n
	}
	if !v.AtLeast(8, 6) {
		return v, fmt.Errorf("TensorRT %s: build-engine supports 8.6 and newer", v)
	}
	return v, nil
}

// EngineInputDType is the dtype the engine built by TensorRT v takes for an
// ONNX input of dtype onnxType: TensorRT before 10.0 has no INT64 tensors and
// its ONNX parser casts int64 inputs to INT32 (with a warning); 10.0 and
// later keep INT64.
func EngineInputDType(v TRTVersion, onnxType string) string {
	if onnxType == "int64" && !v.AtLeast(10, 0) {
		return "int32"
	}
	return onnxType
}

// Int64Note says in one sentence what TensorRT v does with int64 inputs, or
// "" when the profile has none.
func Int64Note(v TRTVersion, p *ShapeProfile) string {
	var names []string
	for _, in := range p.Inputs {
		if in.DType == "int64" {
			names = append(names, in.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	if v.AtLeast(10, 0) {
		return fmt.Sprintf("TensorRT %s supports INT64 natively: %s stay int64 in the engine", v, strings.Join(names, ", "))
	}
	return fmt.Sprintf("TensorRT %s has no INT64 tensors: its ONNX parser casts %s to INT32 (trtexec warns about it); the engine takes int32 and repo/serve feed int32", v, strings.Join(names, ", "))
}

// ShellQuote renders argv as one POSIX shell command line that pastes back
// to the same argv.
func ShellQuote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellWord(a))
	}
	return b.String()
}

func shellWord(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// absPath makes p absolute so that a printed command works from any directory.
func absPath(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// trtLogLevel returns the severity tag of a trtexec log line ("F", "E",
// "W", "I", "V") or "". [F] is kINTERNAL_ERROR (samples/common/logging.h@v11.0:197).
func trtLogLevel(line string) string {
	for _, l := range []string{"F", "E", "W", "I", "V"} {
		if strings.Contains(line, "] ["+l+"] ") || strings.HasPrefix(line, "["+l+"] ") {
			return l
		}
	}
	return ""
}

// lastLines returns the last n non-empty lines of b.
func lastLines(b []byte, n int) []string {
	lines := strings.Split(strings.TrimSpace(string(bytes.TrimSpace(b))), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
