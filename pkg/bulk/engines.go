package bulk

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// engineTimes are what the engines' goroutines saw of a run, for Stats:
// when the first batch reached an engine and the last result came back,
// and how long engines sat without a batch in between (the reading and
// tokenising stage fell behind).
type engineTimes struct {
	start            time.Time
	first, last      atomic.Int64 // ns since start; first 0 until set
	starved          atomic.Int64 // ns, summed over engines, after each one's first batch
	firstOnce        sync.Once
	lastMu           sync.Mutex
	pipelined, plain atomic.Int32 // engines that ran batches overlapped / one at a time
}

func (t *engineTimes) took() {
	t.firstOnce.Do(func() { t.first.Store(int64(time.Since(t.start))) })
}

func (t *engineTimes) finished() {
	d := int64(time.Since(t.start))
	t.lastMu.Lock()
	if d > t.last.Load() {
		t.last.Store(d)
	}
	t.lastMu.Unlock()
}

// receive takes the next batch, counting the wait as starvation once the
// engine has had its first one.
func (t *engineTimes) receive(jobs <-chan *work, had bool) (*work, bool) {
	select {
	case w, ok := <-jobs:
		return w, ok
	default:
	}
	s := time.Now()
	w, ok := <-jobs
	if had && ok {
		t.starved.Add(int64(time.Since(s)))
	}
	return w, ok
}

// bulkPipelined: an engine that overlaps batches (engine.Pipeliner, the
// CUDA engine) gets its next batch staged and queued while the GPU still
// computes the one before, so its stream never waits on the host between
// batches (waking from the batch's event, copying its result out, staging
// the next input). M3ECTL_BULK_PIPELINE=0 runs one batch at a time, as
// before.
func bulkPipelined() bool { return os.Getenv("M3ECTL_BULK_PIPELINE") != "0" }

// store copies one batch's embeddings into its chunk's rows.
func (w *work) store(emb []float32, dim int) error {
	if len(emb) != len(w.rows)*dim {
		return fmt.Errorf("engine returned %d floats for %d rows of width %d", len(emb), len(w.rows), dim)
	}
	for j, r := range w.rows {
		copy(w.c.out[int(r)*dim:(int(r)+1)*dim], emb[j*dim:(j+1)*dim])
	}
	return nil
}

// runEngine feeds one engine until jobs is closed, marking each batch done
// in its chunk; the first error goes to fail (later batches are drained
// unrun).
func runEngine(ctx context.Context, e engine.Engine, jobs <-chan *work, dim int, tm *engineTimes, fail func(error)) {
	if p, ok := e.(engine.Pipeliner); ok && bulkPipelined() {
		tm.pipelined.Add(1)
		runPipelined(ctx, p, jobs, dim, tm, fail)
		return
	}
	tm.plain.Add(1)
	into, _ := e.(engine.IntoEmbedder)
	var buf []float32
	had := false
	for {
		w, ok := tm.receive(jobs, had)
		if !ok {
			return
		}
		had = true
		tm.took()
		if ctx.Err() == nil {
			var emb []float32
			var err error
			if into != nil {
				if n := w.b.Rows() * dim; cap(buf) < n {
					buf = make([]float32, n)
				}
				emb, err = into.EmbedInto(ctx, &w.b, buf[:cap(buf)])
			} else {
				emb, err = e.Embed(ctx, &w.b)
			}
			if err == nil {
				err = w.store(emb, dim)
			}
			if err != nil {
				fail(fmt.Errorf("embed texts %d…: %w", w.c.first+int(w.rows[0]), err))
			}
			tm.finished()
		}
		w.b = engine.Batch{} // let the ids go with the chunk
		w.c.wg.Done()
	}
}

// submitted is a batch queued on a Pipeliner, waiting to be awaited.
type submitted struct {
	w   *work
	t   engine.Ticket
	err error
}

// runPipelined is runEngine for a Pipeliner, as its contract asks: this
// goroutine submits, a second one awaits, in order. Submit blocks while two
// batches are in flight, so at most two are queued per engine.
func runPipelined(ctx context.Context, p engine.Pipeliner, jobs <-chan *work, dim int, tm *engineTimes, fail func(error)) {
	queued := make(chan submitted, 1)
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		var buf []float32
		for s := range queued {
			if s.err == nil {
				// Awaited even when the run is failing: that frees the slot.
				if n := s.t.Rows * dim; cap(buf) < n {
					buf = make([]float32, n)
				}
				emb, err := p.Await(s.t, buf[:cap(buf)])
				if err == nil && ctx.Err() == nil {
					err = s.w.store(emb, dim)
				}
				if err != nil {
					fail(fmt.Errorf("embed texts %d…: %w", s.w.c.first+int(s.w.rows[0]), err))
				}
				tm.finished()
			}
			s.w.c.wg.Done()
		}
	}()
	had := false
	for {
		w, ok := tm.receive(jobs, had)
		if !ok {
			break
		}
		had = true
		tm.took()
		s := submitted{w: w, err: ctx.Err()}
		if s.err == nil {
			s.t, s.err = p.Submit(ctx, &w.b)
			if s.err != nil {
				fail(fmt.Errorf("embed texts %d…: %w", w.c.first+int(w.rows[0]), s.err))
			}
		}
		w.b = engine.Batch{} // Submit staged it; let the ids go with the chunk
		queued <- s
	}
	close(queued)
	done.Wait()
}
