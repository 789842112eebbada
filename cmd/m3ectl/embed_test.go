package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)

func runEmbed(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	if err := onnxrt.Init(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but ONNX Runtime is unavailable: %v", err)
		}
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"embed"}, args...))
	err := root.Execute()
	return out.String(), err
}

type embedLine struct {
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

func parseLines(t *testing.T, out string) []embedLine {
	t.Helper()
	var lines []embedLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var e embedLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		lines = append(lines, e)
	}
	return lines
}

func TestEmbedCommand(t *testing.T) {
	var ref struct {
		Cases []struct {
			Text      string    `json:"text"`
			Embedding []float32 `json:"embedding"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "m3e-tiny", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join("..", "..", "testdata", "m3e-tiny", "model.onnx")
	var jsonl strings.Builder
	var texts []string
	for _, c := range ref.Cases {
		line, _ := json.Marshal(map[string]string{"text": c.Text})
		jsonl.Write(line)
		jsonl.WriteByte('\n')
		texts = append(texts, c.Text)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		cases []int // reference cases expected, in order
	}{
		{"arguments", "", []string{"--model", model, "--batch-size", "3", texts[0], texts[1], texts[2]}, []int{0, 1, 2}},
		{"jsonl on stdin, every reference text", jsonl.String(), []string{"--model", model, "--jsonl", "-"}, seq(len(texts))},
		{"plain lines on stdin", texts[3] + "\n" + texts[0] + "\n", []string{"--model", filepath.Dir(model) + "/dynamo/model.onnx"}, []int{3, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runEmbed(t, tc.stdin, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			lines := parseLines(t, out)
			if len(lines) != len(tc.cases) {
				t.Fatalf("%d lines for %d inputs", len(lines), len(tc.cases))
			}
			for i, c := range tc.cases {
				if lines[i].Index != i {
					t.Errorf("line %d has index %d", i, lines[i].Index)
				}
				want := ref.Cases[c].Embedding
				for k := range want {
					if math.Abs(float64(lines[i].Embedding[k]-want[k])) > 1e-5 {
						t.Fatalf("line %d (case %d) differs at %d: %g vs %g", i, c, k, lines[i].Embedding[k], want[k])
					}
				}
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestEmbedCommandErrors(t *testing.T) {
	model := filepath.Join("..", "..", "testdata", "m3e-tiny", "model.onnx")
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no model flag", "", []string{"x"}, "--model is required"},
		{"missing model", "", []string{"--model", "nope.onnx", "x"}, "nope.onnx: no model found"},
		{"invalid UTF-8 argument", "", []string{"--model", model, "ok", "a\xffb"}, "argument 2: invalid UTF-8"},
		{"invalid UTF-8 on stdin", "ok\n\xff\n", []string{"--model", model}, "stdin:2: invalid UTF-8"},
		{"bad jsonl", `{"txt":"x"}`, []string{"--model", model, "--jsonl", "-"}, `stdin:1: expected a JSON object {"text": "..."}: no "text" field`},
		{"arguments and jsonl", "", []string{"--model", model, "--jsonl", "-", "x"}, "not both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runEmbed(t, tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, tc.want)
			}
		})
	}
}
