package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// embed --output writes the same embeddings as embed's JSON lines, from
// arguments, stdin and --input alike; wrong flags say what to do.
func TestEmbedOutputFile(t *testing.T) {
	model := filepath.Join("..", "..", "testdata", "m3e-tiny", "model.onnx")
	texts := []string{"酒店很好", "房间很小", "m3e 是一个中文句向量模型"}
	want, err := runEmbed(t, strings.Join(texts, "\n")+"\n", "--model", model)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte(strings.Join(texts, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"args", "", append([]string{"--model", model, "--quiet"}, texts...)},
		{"stdin", strings.Join(texts, "\n") + "\n", []string{"--model", model}},
		{"input", "", []string{"--model", model, "--input", in}},
	} {
		out := filepath.Join(dir, c.name+".jsonl")
		if stdout, err := runEmbed(t, c.stdin, append(c.args, "--output", out)...); err != nil || stdout != "" {
			t.Fatalf("%s: %v, stdout %q", c.name, err, stdout)
		}
		got, err := os.ReadFile(out)
		if err != nil || string(got) != want {
			t.Errorf("%s: the .jsonl file differs from embed's output (%v)", c.name, err)
		}
	}
	npy := filepath.Join(dir, "e.npy")
	if _, err := runEmbed(t, "", "--model", model, "--input", in, "-o", npy, "--dtype", "float16"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(npy); err != nil || !strings.Contains(string(b[:128]), "'descr': '<f2'") || !strings.Contains(string(b[:128]), "(3, 64)") {
		t.Errorf("float16 .npy header: %v %q", err, b[:min(len(b), 128)])
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--input", in, "-o", filepath.Join(dir, "x.csv")}, "use .npy, .parquet or .jsonl"},
		{[]string{"--input", in, "-o", npy, "--dtype", "int8"}, "want float32 or float16"},
		{[]string{"--input", in}, "need --output FILE"},
		{[]string{"--input", in, "-o", npy, "--device", "0,x"}, "want GPU ordinals"},
		{[]string{"--input", in, "-o", npy, "--device", "0,1"}, "need --engine cuda"},
		{[]string{"--input", in, "-o", npy, "酒店"}, "not several"},
	} {
		_, err := runEmbed(t, "", append([]string{"--model", model}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.csv")); err == nil {
		t.Error("a refused run left its output file")
	}
}
