package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// lengthEngine embeds a row as [row length, first id], and records batch
// shapes, so tests can check grouping and order without a model.
type lengthEngine struct {
	batches [][]int // row lengths per call
	closed  bool
}

func (e *lengthEngine) Info() Info { return Info{Backend: "test", Dim: 2, Pooling: DefaultPooling} }
func (e *lengthEngine) Close() error {
	e.closed = true
	return nil
}
func (e *lengthEngine) Embed(ctx context.Context, b *Batch) ([]float32, error) {
	var lens []int
	out := make([]float32, 0, 2*b.Rows())
	for i := 0; i < b.Rows(); i++ {
		r := b.Row(i)
		lens = append(lens, len(r))
		out = append(out, float32(len(r)), float32(r[1]))
	}
	e.batches = append(e.batches, lens)
	return out, ctx.Err()
}

func testTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(filepath.Join("..", "..", "testdata", "m3e-tiny", "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEmbedTextsKeepsOrderAndGroupsByLength(t *testing.T) {
	tok := testTokenizer(t)
	texts := []string{"一二三四五六七八", "一", "一二三四", "一二", "一二三四五六", "一二三"}
	eng := &lengthEngine{}
	e := &Embedder{Tokenizer: tok, Engine: eng, BatchSize: 4}
	got, err := e.EmbedTexts(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		want := float32(len([]rune(text)) + 2) // [CLS] + one token per character + [SEP]
		if got[i][0] != want || got[i][1] != float32(tok.Encode(text)[1]) {
			t.Errorf("text %d (%q): got %v, want length %v", i, text, got[i], want)
		}
	}
	if got, want := fmt.Sprint(eng.batches), "[[3 4 5 6] [8 10]]"; got != want {
		t.Errorf("batches %s, want %s (sorted by length, at most 4 rows)", got, want)
	}
}

func TestEmbedTextsEmptyAndCancelled(t *testing.T) {
	e := &Embedder{Tokenizer: testTokenizer(t), Engine: &lengthEngine{}}
	got, err := e.EmbedTexts(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty input: %v, %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.EmbedTexts(ctx, []string{"a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

func TestOpenChoosesBackend(t *testing.T) {
	opened := ""
	mk := func(name string) Opener {
		return func(*Model, Options) (Engine, error) { opened = name; return &lengthEngine{}, nil }
	}
	RegisterBackend("cpu", mk("cpu"), nil)
	t.Cleanup(func() {
		backendsMu.Lock()
		delete(backends, "cpu")
		delete(backends, "cuda")
		backendsMu.Unlock()
	})
	m := &Model{Path: "x"}
	if _, err := Open("auto", m, Options{}); err != nil || opened != "cpu" {
		t.Fatalf("auto without cuda: opened %q, err %v", opened, err)
	}
	RegisterBackend("cuda", mk("cuda"), func() error { return errors.New("libcuda.so.1 not found") })
	if _, err := Open("auto", m, Options{}); err != nil || opened != "cpu" {
		t.Fatalf("auto with unavailable cuda: opened %q, err %v", opened, err)
	}
	if _, err := Open("cuda", m, Options{}); err == nil || !strings.Contains(err.Error(), "libcuda.so.1 not found") {
		t.Fatalf("explicit unavailable cuda: err %v", err)
	}
	RegisterBackend("cuda", mk("cuda"), nil)
	if _, err := Open("auto", m, Options{}); err != nil || opened != "cuda" {
		t.Fatalf("auto with cuda: opened %q, err %v", opened, err)
	}
	RegisterBackend("cuda", func(*Model, Options) (Engine, error) { return nil, errors.New("cannot read graph") }, nil)
	if _, err := Open("auto", m, Options{}); err != nil || opened != "cpu" {
		t.Fatalf("auto with failing cuda: opened %q, err %v", opened, err)
	}
	if _, err := Open("tpu", m, Options{}); err == nil || !strings.Contains(err.Error(), "not built into") {
		t.Fatalf("unknown: err %v", err)
	}
}
