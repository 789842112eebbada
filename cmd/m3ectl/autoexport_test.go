package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)

// stOnlyFolder is the bundled model's Hugging Face folder without its
// model.onnx: what a downloaded m3e-base looks like.
func stOnlyFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m3e-tiny")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(fixtureDirAbs(t), "hf")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "model.onnx" {
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func embedVectors(t *testing.T, out string) [][]float32 {
	t.Helper()
	var vs [][]float32
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r struct {
			Embedding []float32 `json:"embedding"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		vs = append(vs, r.Embedding)
	}
	return vs
}

// TestSafetensorsFolderExportsOnce: embed and serve take a folder with only
// model.safetensors, export it to ONNX once (cached under $XDG_CACHE_HOME,
// said in one log line) and give the vectors the ONNX model gives.
func TestSafetensorsFolderExportsOnce(t *testing.T) {
	if err := onnxrt.Init(""); err != nil {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	st := stOnlyFolder(t)
	texts := []string{"酒店很好", "m3e 是一个中文句向量模型"}
	want, err := runCmd(t, append([]string{"embed", "--model", filepath.Join(fixtureDirAbs(t), "hf")}, texts...)...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runCmd(t, append([]string{"embed", "--model", st}, texts...)...)
	if err != nil {
		t.Fatalf("embed on a safetensors-only folder: %v", err)
	}
	wv, gv := embedVectors(t, want), embedVectors(t, got)
	if len(wv) != 2 || len(gv) != 2 {
		t.Fatalf("%d and %d vectors", len(wv), len(gv))
	}
	for i := range wv {
		for j := range wv[i] {
			if d := wv[i][j] - gv[i][j]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("text %d component %d: exported %v, bundled ONNX %v", i, j, gv[i][j], wv[i][j])
			}
		}
	}
	cached, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "m3ectl", "onnx", "m3e-tiny-*", "model.onnx"))
	if len(cached) != 1 {
		t.Fatalf("cached exports: %v", cached)
	}
	logs := serveLogs(t, "serve", "--model", st)
	if !strings.Contains(logs, "using the cached ONNX export") || !strings.Contains(logs, cached[0]) {
		t.Errorf("serve did not reuse the cached export:\n%s", logs)
	}
	if strings.Contains(logs, "level=ERROR") {
		t.Errorf("serve logged errors:\n%s", logs)
	}
}
