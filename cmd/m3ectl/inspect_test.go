package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

// runInspect runs `m3ectl inspect args...` in-process.
func runInspect(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(append([]string{"inspect"}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestInspectCommand(t *testing.T) {
	tiny := filepath.Join("..", "..", "testdata", "m3e-tiny")
	tests := []struct {
		name     string
		args     []string
		external int
	}{
		{"single file", []string{"--json", filepath.Join(tiny, "model.onnx")}, 0},
		{"external data", []string{"--json", filepath.Join(tiny, "dynamo", "model.onnx")}, 1},
		{"model folder", []string{"--json", filepath.Join(tiny, "dynamo")}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runInspect(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			var r convert.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("output is not a report: %v\n%s", err, out)
			}
			want := convert.Architecture{Type: "bert", Layers: 2, Hidden: 64, Heads: 4, Intermediate: 128, VocabSize: 21128, MaxPositions: 512}
			if r.Architecture == nil || *r.Architecture != want || len(r.ExternalData) != tc.external {
				t.Errorf("architecture %+v, external data %v", r.Architecture, r.ExternalData)
			}
			if r.Inputs[0].Shape[0].Param != "batch_size" {
				t.Errorf("symbolic dimension lost: %+v", r.Inputs[0])
			}
		})
	}
	t.Run("text form", func(t *testing.T) {
		out, err := runInspect(t, filepath.Join(tiny, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"opset 11", "[batch_size, max_seq_len]", "bert: 2 layers, hidden 64, 4 heads", "--maxShapes=input_ids:64x512,attention_mask:64x512"} {
			if !strings.Contains(out, s) {
				t.Errorf("text form lacks %q:\n%s", s, out)
			}
		}
	})
}

func TestInspectCommandErrors(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.onnx")
	if err := os.WriteFile(corrupt, []byte("this is not protobuf \xff\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A sentence-transformers folder with safetensors only, as m3e-base's own
	// repository ships it: valid for the CUDA engine, but there is no graph to inspect.
	stOnly := filepath.Join(dir, "st-only")
	if err := os.MkdirAll(stOnly, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "vocab.txt"} {
		if err := os.Symlink(filepath.Join(fixtureDirAbs(t), "hf", f), filepath.Join(stOnly, f)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		args    []string
		mention string
	}{
		{"missing file", []string{filepath.Join(dir, "absent.onnx")}, "absent.onnx: no such file"},
		{"corrupt file", []string{corrupt}, "corrupt.onnx: not an ONNX model"},
		{"folder without an ONNX graph", []string{stOnly}, "no model.onnx"},
		{"no argument", nil, "accepts 1 arg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runInspect(t, tc.args...)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.mention) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line mentioning %q", msg, tc.mention)
			}
		})
	}
}

func fixtureDirAbs(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "testdata", "m3e-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
