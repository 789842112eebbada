package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runTokenizeCmd runs `m3ectl tokenize args...` in-process.
func runTokenizeCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"tokenize"}, args...))
	err := root.Execute()
	return out.String(), err
}

// TestTokenizeGolden pins the command's output format. Regenerate with
// UPDATE_GOLDEN=1 go test ./cmd/m3ectl -run TestTokenizeGolden.
func TestTokenizeGolden(t *testing.T) {
	hf := filepath.Join("..", "..", "testdata", "m3e-tiny", "hf")
	jsonl := filepath.Join(t.TempDir(), "texts.jsonl")
	if err := os.WriteFile(jsonl, []byte("{\"text\":\"你好,世界!\"}\n\n{\"text\":\"don't <b>\\u00e9</b>\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, golden, stdin string
		args                []string
	}{
		{"arguments", "args.jsonl", "", []string{"--vocab", hf, "m3e 是一个中文句向量模型", "Hello, World!", ""}},
		{"jsonl file", "jsonl.jsonl", "", []string{"--vocab", filepath.Join(hf, "vocab.txt"), "--jsonl", jsonl}},
		{"stdin, no lower, max length", "nolower.jsonl", `{"text":"Hello 中文 World and more words"}`,
			[]string{"--vocab", filepath.Join(hf, "tokenizer.json"), "--no-lower", "--max-length", "6", "--jsonl", "-"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runTokenizeCmd(t, tc.stdin, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("..", "..", "testdata", "tokenizer", tc.golden)
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("output:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

func TestTokenizeErrors(t *testing.T) {
	vocab := filepath.Join("..", "..", "testdata", "m3e-tiny", "vocab.txt")
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"text\":\"ok\"}\n{\"text\":\"\xff\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		want  string
		lines int // lines printed before the error
	}{
		{"invalid UTF-8 argument", []string{"--vocab", vocab, "ok", "a\xffb"}, "argument 2: invalid UTF-8", 0},
		{"invalid UTF-8 in jsonl", []string{"--vocab", vocab, "--jsonl", bad}, bad + ":2: invalid UTF-8", 1},
		{"missing vocab", []string{"--vocab", "nope.txt", "x"}, "nope.txt", 0},
		{"no vocab flag", []string{"x"}, `"vocab" not set`, 0},
		{"both sources", []string{"--vocab", vocab, "--jsonl", bad, "x"}, "not both", 0},
		{"negative max length", []string{"--vocab", vocab, "--max-length", "-1", "x"}, "--max-length -1", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runTokenizeCmd(t, "", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if n := strings.Count(out, "\n"); n != tc.lines {
				t.Errorf("%d lines printed before the error, want %d", n, tc.lines)
			}
		})
	}
}

// TestTokenizeStdinLines: with neither arguments nor --jsonl, tokenize reads
// one text per line on stdin, as embed does and as the README says.
func TestTokenizeStdinLines(t *testing.T) {
	vocab := filepath.Join("..", "..", "testdata", "m3e-tiny", "hf")
	out, err := runTokenizeCmd(t, "酒店很好\n房间很小\n", "--vocab", vocab)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ids":[101,6983,2421,2523,1962,102],"tokens":["[CLS]","酒","店","很","好","[SEP]"]}
{"ids":[101,2791,7313,2523,2207,102],"tokens":["[CLS]","房","间","很","小","[SEP]"]}
`
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	if _, err := runTokenizeCmd(t, "ok\n\xff\n", "--vocab", vocab); err == nil || !strings.Contains(err.Error(), "stdin:2") {
		t.Fatalf("invalid UTF-8 on stdin: %v", err)
	}
}
