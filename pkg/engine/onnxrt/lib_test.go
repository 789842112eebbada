package onnxrt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

func TestFindLibraryOrder(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libonnxruntime.so")
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, explicit, env string
		want, wantErr       string
	}{
		{name: "explicit path wins over the environment", explicit: lib, env: "/nope/lib.so", want: lib},
		{name: "environment next", env: lib, want: lib},
		{name: "missing explicit path is an error, not a fall-through", explicit: "/nope/libonnxruntime.so", env: lib, wantErr: "--ort-lib /nope/libonnxruntime.so: no such file"},
		{name: "missing environment path is an error", env: "/nope/libonnxruntime.so", wantErr: "ONNXRUNTIME_LIB=/nope/libonnxruntime.so: no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvLib, tc.env)
			got, err := FindLibrary(tc.explicit)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestNotFoundMessageSaysHowToGetIt(t *testing.T) {
	for _, w := range []string{"scripts/setup-ort.sh", "ONNXRUNTIME_LIB", "--ort-lib"} {
		if !strings.Contains(ErrNoLibrary.Error(), w) {
			t.Errorf("message %q does not mention %s", ErrNoLibrary, w)
		}
	}
}

// TestGPUProvidersFailClearly: the CPU-only library has no CUDA or TensorRT
// execution provider; asking for one is one clear error, not a crash.
func TestGPUProvidersFailClearly(t *testing.T) {
	needORT(t)
	m, err := engine.ResolveModel(fixtureModels["opset11"])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"cuda", "tensorrt", "rocm"} {
		t.Run(p, func(t *testing.T) {
			e, err := OpenEngine(m, engine.Options{Provider: p})
			if err == nil {
				e.Close()
				t.Skipf("this ONNX Runtime has the %s provider", p)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(strings.ToLower(err.Error()), p) {
				t.Errorf("error %q is not one line naming %s", err, p)
			}
		})
	}
}
