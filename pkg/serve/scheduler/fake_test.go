package scheduler

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// fakeEncoder tokenises a text as its bytes between [CLS]=101 and
// [SEP]=102, so that a row's length is len(text)+2.
type fakeEncoder struct{ maxLen int }

func (f fakeEncoder) MaxLength() int { return f.maxLen }

func (f fakeEncoder) EncodeTo(dst []int32, text string) ([]int32, bool) {
	dst = append(dst, 101)
	truncated := false
	for i := 0; i < len(text); i++ {
		if i+2 >= f.maxLen {
			truncated = true
			break
		}
		dst = append(dst, int32(text[i]))
	}
	return append(dst, 102), truncated
}

const fakeDim = 3

// rowEmbedding is what the fake engine returns for a row: a fingerprint of
// its ids, so tests can check that every answer row belongs to its text.
func rowEmbedding(ids []int32) [fakeDim]float32 {
	var h uint32 = 2166136261
	for _, id := range ids {
		h = (h ^ uint32(id)) * 16777619
	}
	return [fakeDim]float32{float32(len(ids)), float32(h % 65521), float32(h % 251)}
}

func textEmbedding(text string, maxLen int) [fakeDim]float32 {
	ids, _ := fakeEncoder{maxLen}.EncodeTo(nil, text)
	return rowEmbedding(ids)
}

// batchSeen records one Embed call.
type batchSeen struct {
	rows, tokens, maxLen int
	texts                []string
}

// fakeEngine is a stand-in for a real engine (the scheduler is tested with
// a fake runner): it records the batches it sees, can hold them at a gate,
// and can fail.
type fakeEngine struct {
	mu      sync.Mutex
	seen    []batchSeen
	gate    chan struct{} // when non-nil, Embed waits for a receive from it
	started chan struct{} // when non-nil, Embed sends here once it starts
	fail    error
	closed  atomic.Bool
	running *atomic.Int32 // shared across instances: concurrent Embed calls
	peak    *atomic.Int32
	// delay, when set, is how long a batch of n rows takes, as a GPU's
	// fixed cost plus a cost per row.
	delay func(rows int) time.Duration
}

func (f *fakeEngine) Info() engine.Info {
	return engine.Info{Backend: "fake", Dim: fakeDim, MaxSeqLen: 512}
}

func (f *fakeEngine) Embed(ctx context.Context, b *engine.Batch) ([]float32, error) {
	if f.closed.Load() {
		return nil, errors.New("engine used after Close")
	}
	if f.running != nil {
		n := f.running.Add(1)
		defer f.running.Add(-1)
		for {
			p := f.peak.Load()
			if n <= p || f.peak.CompareAndSwap(p, n) {
				break
			}
		}
	}
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.delay != nil {
		time.Sleep(f.delay(b.Rows()))
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s := batchSeen{rows: b.Rows(), tokens: b.Tokens(), maxLen: b.MaxLen()}
	for i := 0; i < b.Rows(); i++ {
		row := b.Row(i)
		txt := make([]byte, 0, len(row))
		for _, id := range row[1 : len(row)-1] {
			txt = append(txt, byte(id))
		}
		s.texts = append(s.texts, string(txt))
	}
	f.mu.Lock()
	f.seen = append(f.seen, s)
	f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	out := make([]float32, 0, b.Rows()*fakeDim)
	for i := 0; i < b.Rows(); i++ {
		e := rowEmbedding(b.Row(i))
		out = append(out, e[:]...)
	}
	return out, nil
}

func (f *fakeEngine) Close() error {
	f.closed.Store(true)
	return nil
}

func (f *fakeEngine) batches() []batchSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]batchSeen(nil), f.seen...)
}
