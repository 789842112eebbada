package bulk

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// slotEngine is a real CPU engine behind engine.Pipeliner's contract as the
// CUDA engine keeps it: two slots, Submit blocks while both are in flight,
// Await frees its slot.
type slotEngine struct {
	engine.Engine
	mu       sync.Mutex
	free     *sync.Cond
	busy     [2]bool
	in       [2]engine.Batch
	ctx      [2]context.Context
	inFlight int
	maxSeen  int
	submits  int
}

func newSlotEngine(e engine.Engine) *slotEngine {
	s := &slotEngine{Engine: e}
	s.free = sync.NewCond(&s.mu)
	return s
}

func (s *slotEngine) Pipelined() bool { return false } // the bulk path overlaps whatever this says

func (s *slotEngine) Submit(ctx context.Context, b *engine.Batch) (engine.Ticket, error) {
	s.mu.Lock()
	for s.busy[0] && s.busy[1] {
		s.free.Wait()
	}
	i := 0
	if s.busy[0] {
		i = 1
	}
	s.busy[i] = true
	s.inFlight++
	s.maxSeen = max(s.maxSeen, s.inFlight)
	s.submits++
	s.mu.Unlock()
	// The batch is copied (b may be reused once Submit returns) and run in
	// Await, so the next Submit overlaps it as it would the GPU's run.
	s.in[i] = engine.Batch{IDs: append([]int32(nil), b.IDs...), Offsets: append([]int32(nil), b.Offsets...)}
	s.ctx[i] = ctx
	return engine.Ticket{Slot: i, Rows: b.Rows()}, nil
}

func (s *slotEngine) Nearly(engine.Ticket) error { return nil }

func (s *slotEngine) Await(t engine.Ticket, dst []float32) ([]float32, error) {
	emb, err := s.Engine.Embed(s.ctx[t.Slot], &s.in[t.Slot])
	n := copy(dst, emb)
	s.mu.Lock()
	s.busy[t.Slot] = false
	s.inFlight--
	s.free.Broadcast()
	s.mu.Unlock()
	return dst[:n], err
}

// TestPipelinedEnginesMatch runs the corpus through two engines that take
// the overlapped path and checks the .jsonl against the one-at-a-time run
// byte for byte, and that batches really were in flight two at a time.
func TestPipelinedEnginesMatch(t *testing.T) {
	e, m := embedder(t)
	texts := corpus(300)
	second, err := engine.Open("cpu", m, engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	dir := t.TempDir()
	run := func(name string, engines []engine.Engine) (Stats, []byte) {
		p := filepath.Join(dir, name)
		sink, err := CreateSink(p, e.Engine.Info().Dim, SinkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := Run(context.Background(), &SliceSource{Texts: texts}, sink, e.Tokenizer, engines,
			Options{Chunk: 64, FirstChunk: 8, BatchTokens: 300, BatchRows: 16, Workers: 3})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return st, b
	}
	stPlain, plain := run("plain.jsonl", []engine.Engine{e.Engine, second})
	a, b := newSlotEngine(e.Engine), newSlotEngine(second)
	stPipe, piped := run("piped.jsonl", []engine.Engine{a, b})
	if !bytes.Equal(plain, piped) {
		t.Fatal("pipelined engines wrote other embeddings than one batch at a time")
	}
	if stPlain.Pipelined != 0 || stPipe.Pipelined != 2 {
		t.Errorf("pipelined engines: %d and %d, want 0 and 2", stPlain.Pipelined, stPipe.Pipelined)
	}
	if a.submits+b.submits != stPipe.Batches || stPipe.Batches < len(texts)/16 {
		t.Errorf("%d+%d submits for %d batches", a.submits, b.submits, stPipe.Batches)
	}
	if max(a.maxSeen, b.maxSeen) != 2 {
		t.Errorf("at most %d batches in flight on one engine, want 2", max(a.maxSeen, b.maxSeen))
	}
	if stPipe.FirstBatch <= 0 || stPipe.LastResult < stPipe.FirstBatch || stPipe.LastResult > stPipe.Elapsed {
		t.Errorf("first batch %v, last result %v, run %v", stPipe.FirstBatch, stPipe.LastResult, stPipe.Elapsed)
	}
}

// TestChunkRamp: with FirstChunk the chunks read grow 8, 16, 32, then
// Chunk; AfterRead runs once, at the end of the input.
func TestChunkRamp(t *testing.T) {
	src := &sizeSource{n: 200}
	afterRead := 0
	o := Options{Chunk: 50, FirstChunk: 8, AfterRead: func() { afterRead++ }}.withDefaults()
	e, _ := embedder(t)
	sink := &memSink{}
	if _, err := Run(context.Background(), src, sink, e.Tokenizer, []engine.Engine{e.Engine}, o); err != nil {
		t.Fatal(err)
	}
	want := []int{8, 16, 32, 50, 50, 50}
	if len(src.asked) < len(want) {
		t.Fatalf("asked for %v", src.asked)
	}
	for i, w := range want {
		if src.asked[i] != w {
			t.Fatalf("asked for %v, want %v first", src.asked, want)
		}
	}
	if sink.rows != 200 {
		t.Fatalf("%d rows written", sink.rows)
	}
	if afterRead != 1 {
		t.Fatalf("AfterRead called %d times, want once", afterRead)
	}
}

// sizeSource yields n short texts and records the sizes asked for.
type sizeSource struct {
	n, done int
	asked   []int
}

func (s *sizeSource) Next(max int) ([]string, error) {
	s.asked = append(s.asked, max)
	k := min(max, s.n-s.done)
	if k == 0 {
		return nil, io.EOF
	}
	out := make([]string, k)
	for i := range out {
		out[i] = "酒店很好"
	}
	s.done += k
	return out, nil
}

func (s *sizeSource) Progress() (int64, int64) { return 0, 0 }

// memSink counts rows, checking they arrive in order.
type memSink struct{ rows int }

func (m *memSink) Write(first int, texts []string, _ []float32, _ int) error {
	if first != m.rows {
		return os.ErrInvalid
	}
	m.rows += len(texts)
	return nil
}
func (m *memSink) Close() error { return nil }
func (m *memSink) Abort()       {}
