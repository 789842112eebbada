package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// textEngine is fakeEngine writing each row's text as "t<first float>",
// and recording whether each batch asked for text.
type textEngine struct {
	fakeEngine
	mu       sync.Mutex
	asked    []bool
	textOnly []bool       // each text batch's Batch.TextOnly
	out      atomic.Int32 // batches' text not released yet
}

func (f *textEngine) EmbedText(ctx context.Context, b *engine.Batch, dst []float32, txt *engine.Text) ([]float32, error) {
	txt.Reset()
	emb, err := f.Embed(ctx, b)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.asked = append(f.asked, true)
	f.textOnly = append(f.textOnly, b.TextOnly)
	f.mu.Unlock()
	for i := range b.Rows() {
		txt.Rows = append(txt.Rows, fmt.Appendf(nil, "t%g", emb[i*fakeDim]+1000*emb[i*fakeDim+1]))
	}
	f.out.Add(1)
	txt.Release = func() { f.out.Add(-1) }
	return append(dst[:0], emb...), nil
}

// TestInferTextCarriesTheEngineText: rows of requests split over several
// batches get their own row's text; a plain Infer gets none, and batches
// of plain requests do not ask the engine for text.
func TestInferTextCarriesTheEngineText(t *testing.T) {
	eng := &textEngine{}
	s := startEngines(t, Config{MaxBatchSize: 4, Dynamic: true, MaxQueueDelay: 2 * time.Millisecond}, []engine.Engine{eng})
	texts := []string{"a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"}
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := texts[c : c+2]
			emb, text, release, _, err := s.InferText(context.Background(), mine)
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
			if len(emb) != len(mine)*fakeDim {
				t.Errorf("%d floats for %d texts", len(emb), len(mine))
			}
			if len(text) != len(mine) {
				t.Errorf("%d rows of text for %d texts", len(text), len(mine))
				return
			}
			for i, txt := range mine {
				e := textEmbedding(txt, testMaxLen)
				if want := fmt.Sprintf("t%g", e[0]+1000*e[1]); string(text[i]) != want {
					t.Errorf("text %q: row text %q, want %q", txt, text[i], want)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	eng.mu.Lock()
	asked := len(eng.asked)
	eng.mu.Unlock()
	if asked == 0 || asked != len(eng.batches()) {
		t.Fatalf("%d of %d batches asked for text, want all", asked, len(eng.batches()))
	}
	eng.mu.Lock()
	for i, only := range eng.textOnly {
		if !only {
			t.Errorf("text batch %d of InferText calls alone is not TextOnly", i)
		}
	}
	eng.mu.Unlock()
	emb, err := mustInfer(s, []string{"plain"})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, []string{"plain"}, emb)
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if len(eng.asked) != asked {
		t.Fatalf("a batch of plain Infer calls asked the engine for text")
	}
	if n := eng.out.Load(); n != 0 {
		t.Fatalf("%d batches' text never released", n)
	}
}

// TestMixedBatchKeepsFloats: a batch holding an InferText and a plain
// Infer is not TextOnly, and both get their floats.
func TestMixedBatchKeepsFloats(t *testing.T) {
	eng := &textEngine{}
	s := startEngines(t, Config{MaxBatchSize: 2, Dynamic: true, MaxQueueDelay: time.Second}, []engine.Engine{eng})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		emb, text, release, _, err := s.InferText(context.Background(), []string{"text"})
		if err != nil {
			t.Error(err)
			return
		}
		defer release()
		if len(text) != 1 || text[0] == nil {
			t.Errorf("InferText: text %q", text)
		}
		checkRows(t, []string{"text"}, emb)
	}()
	go func() {
		defer wg.Done()
		emb, err := mustInfer(s, []string{"floats"})
		if err != nil {
			t.Error(err)
			return
		}
		checkRows(t, []string{"floats"}, emb)
	}()
	wg.Wait()
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if len(eng.batches()) != 1 || len(eng.textOnly) != 1 || eng.textOnly[0] {
		t.Fatalf("%d batches, TextOnly %v; want one mixed batch, not TextOnly", len(eng.batches()), eng.textOnly)
	}
}

func mustInfer(s *Scheduler, texts []string) ([]float32, error) {
	emb, _, err := s.Infer(context.Background(), texts)
	return emb, err
}
