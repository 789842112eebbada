package onnxrt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// TestEmbedderMatchesReference runs the whole CLI path (tokenizer → sorted
// batches → ONNX Runtime → pooling) on the reference texts.
func TestEmbedderMatchesReference(t *testing.T) {
	needORT(t)
	cases := loadReference(t)
	texts := make([]string, len(cases))
	for i, c := range cases {
		texts[i] = c.Text
	}
	for name, path := range fixtureModels {
		for _, bs := range []int{1, 4, 32} {
			t.Run(fmt.Sprintf("%s/batch=%d", name, bs), func(t *testing.T) {
				m, err := engine.ResolveModel(path)
				if err != nil {
					t.Fatal(err)
				}
				emb, err := engine.NewEmbedder(m, engine.EmbedderConfig{Kind: "cpu", BatchSize: bs, Options: engine.Options{Threads: 1}})
				if err != nil {
					t.Fatal(err)
				}
				defer emb.Close()
				got, err := emb.EmbedTexts(context.Background(), texts)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(cases) {
					t.Fatalf("%d embeddings for %d texts", len(got), len(cases))
				}
				for i, c := range cases {
					if d := maxDiff(got[i], c.Embedding); d > tolerance {
						t.Errorf("case %d (%q): max |Δ| = %g", i, c.Text, d)
					}
				}
			})
		}
	}
}

func TestNewEmbedderRejectsBadInputs(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	smallVocab := write("small/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n的\n")
	corrupt := write("corrupt/model.onnx", "this is not a protobuf")
	write("corrupt/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
	truncatedData, err := os.ReadFile(fixture("m3e-tiny", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := write("truncated/model.onnx", string(truncatedData[:len(truncatedData)/2]))
	write("truncated/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
	tests := []struct {
		name   string
		model  string
		vocab  string
		want   []string // substrings of the one-line error
		target error
	}{
		{"vocabulary smaller than the embedding table", fixtureModels["opset11"], smallVocab,
			[]string{smallVocab, "6 entries", "model.onnx", "21128 rows"}, engine.ErrVocabMismatch},
		{"corrupt model", corrupt, "", []string{corrupt}, nil},
		{"truncated model", truncated, "", []string{truncated}, nil},
		{"not an encoder", notEncoder(t), fixture("m3e-tiny", "vocab.txt"),
			[]string{"not-encoder.onnx", "not a sentence encoder", "no 3-D float output"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := engine.ResolveModel(tc.model)
			if err != nil {
				t.Fatal(err)
			}
			emb, err := engine.NewEmbedder(m, engine.EmbedderConfig{Kind: "cpu", Vocab: tc.vocab})
			if err == nil {
				emb.Close()
				t.Fatal("NewEmbedder succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans several lines: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %v is not %v", err, tc.target)
			}
		})
	}
}
