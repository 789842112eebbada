package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)

func TestVersion(t *testing.T) {
	out, err := runCmd(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"m3ectl ", "commit ", "go ", "onnxruntime ", "cuda "} {
		if !strings.Contains(out, "\n"+k) && !strings.HasPrefix(out, k) {
			t.Errorf("version output lacks %q:\n%s", k, out)
		}
	}
	flag, err := runCmd(t, "--version")
	if err != nil || flag != out {
		t.Errorf("--version printed %q, version printed %q (%v)", flag, out, err)
	}
	js, err := runCmd(t, "version", "--json")
	var r versionReport
	if err != nil || json.Unmarshal([]byte(js), &r) != nil || r.Go == "" || r.Version == "" {
		t.Fatalf("version --json: %q %v", js, err)
	}
	if onnxrt.Init("") == nil && !strings.HasPrefix(r.ONNXRuntime, "1.24") {
		t.Errorf("ONNX Runtime is loadable but version says %q", r.ONNXRuntime)
	}
}

func TestFlagMistakesInWords(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--htp-port", "1"}, "unknown flag --htp-port; did you mean --http-port?"},
		{[]string{"bench", "--duratoin", "1s"}, "did you mean --duration?"},
		{[]string{"embed", "--modle", "x"}, "did you mean --model?"},
		{[]string{"serve", "--zzzzzzzz"}, "unknown flag --zzzzzzzz (see m3ectl serve --help)"},
		{[]string{"serve", "--model", "x", "--model-repository", "y"}, "--model and --model-repository exclude each other"},
		{[]string{"serve", "--model", "x", "--http-port", "9000", "--grpc-port", "9000"}, "--http-port and --grpc-port are both 9000"},
		{[]string{"serve", "--model", "x", "--grpc-port", "9001", "--metrics-port", "9001"}, "--grpc-port and --metrics-port are both 9001"},
		{[]string{"--log-format", "xml", "version"}, `--log-format "xml": use text or json`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runCmd(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// serveLogs runs serve with args for a moment and returns its stderr.
func serveLogs(t *testing.T, args ...string) string {
	t.Helper()
	root := newRootCmd()
	var stderr bytes.Buffer
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&stderr)
	root.SetArgs(append(args, "--host", "127.0.0.1", "--http-port", strconv.Itoa(freePort(t)), "--grpc-port", "-1", "--metrics-port", "-1", "--threads", "1"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr.String())
	}
	return stderr.String()
}

// TestServeLogsJSON: --log-format json gives one JSON object a line, and
// loading says what it does; an empty repository and KIND_GPU on --engine
// cpu each warn.
func TestServeLogsJSON(t *testing.T) {
	if err := onnxrt.Init(""); err != nil {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	records := func(t *testing.T, out string) []map[string]any {
		var recs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
			recs = append(recs, r)
		}
		return recs
	}
	find := func(recs []map[string]any, level, msgPart string) map[string]any {
		for _, r := range recs {
			if r["level"] == level && strings.Contains(r["msg"].(string), msgPart) {
				return r
			}
		}
		return nil
	}

	empty := t.TempDir()
	recs := records(t, serveLogs(t, "--log-format", "json", "serve", "--model-repository", empty))
	if find(recs, "WARN", "holds no models") == nil {
		t.Errorf("no warning for an empty repository: %v", recs)
	}

	repo := t.TempDir()
	dir := filepath.Join(repo, "m3e", "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model.onnx", "vocab.txt"} {
		abs, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "m3e-tiny", f))
		if err := os.Symlink(abs, filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := "name: \"m3e\"\nbackend: \"onnxruntime\"\nmax_batch_size: 8\ninstance_group [ { count: 2 kind: KIND_GPU } ]\n"
	if err := os.WriteFile(filepath.Join(repo, "m3e", "config.pbtxt"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	recs = records(t, serveLogs(t, "--log-format", "json", "serve", "--model-repository", repo, "--engine", "cpu"))
	if find(recs, "WARN", "KIND_GPU") == nil {
		t.Errorf("no warning for KIND_GPU on --engine cpu: %v", recs)
	}
	if find(recs, "INFO", "loading model") == nil || find(recs, "INFO", "model warmed up") == nil {
		t.Errorf("loading is not logged: %v", recs)
	}
	inst := find(recs, "INFO", "model instances opened")
	if inst == nil || inst["count"] != 2.0 || !strings.Contains(strings.Join(strs(inst["kind"]), ","), "KIND_GPU") {
		t.Errorf("instance count and kind not logged: %v", inst)
	}
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
