package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestExportThenEmbed is the lifecycle's first step from the command line:
// export the Hugging Face folder, inspect it, embed with it, convert it.
func TestExportThenEmbed(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m3e", "model.onnx")
	out, err := runCmd(t, "export", "--model", filepath.Join("..", "..", "testdata", "m3e-tiny", "hf"), "--out", model)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "output embeddings [batch_size, hidden]: mean pooling + L2 normalisation") {
		t.Errorf("export said %q", out)
	}
	out, err = runCmd(t, "inspect", model)
	if err != nil || !strings.Contains(out, "skip their own pooling") {
		t.Fatalf("inspect: %v %q", err, out)
	}
	out, err = runEmbed(t, "", "--model", filepath.Dir(model), "酒店很好")
	if err != nil {
		t.Fatal(err)
	}
	got := parseLines(t, out)[0].Embedding
	want := []float32{-0.07237306982278824, -0.020871197804808617, -0.09517773240804672}
	for i, w := range want {
		if math.Abs(float64(got[i]-w)) > 1e-5 {
			t.Errorf("embedding[%d] = %v, want %v", i, got[i], w)
		}
	}
	fp16 := filepath.Join(dir, "fp16", "model.onnx")
	os.MkdirAll(filepath.Dir(fp16), 0o755)
	out, err = runCmd(t, "convert", "--onnx", model, "--out", fp16, "--fp16")
	if err != nil || !strings.Contains(out, "kept in fp32") || !strings.Contains(out, "output embeddings float32 [batch_size, 64]") {
		t.Fatalf("convert: %v %q", err, out)
	}
	if _, err := runCmd(t, "convert", "--onnx", model, "--out", model, "--fp16"); err == nil || !strings.Contains(err.Error(), "is the input") {
		t.Fatalf("convert onto its input: %v", err)
	}
}
