package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// instance runs batches on its own engine until the owner closes the work
// channel. One engine per instance: engines are not safe for concurrent use.
func (s *Scheduler) instance(e engine.Engine) {
	x := &executor{eb: &engine.Batch{}}
	x.into, _ = e.(engine.IntoEmbedder)
	for b := range s.work {
		x.reqs = s.execute(e, x, b, x.reqs[:0])
		clear(x.reqs)
		s.free <- struct{}{}
	}
}

// executor is one instance's reusable state: nothing on the path of a batch
// allocates once these have grown to the largest batch.
type executor struct {
	eb   *engine.Batch
	reqs []*request
	into engine.IntoEmbedder // nil when the engine allocates its results
	out  []float32           // into's destination
}

func (x *executor) embed(ctx context.Context, e engine.Engine, dim int) ([]float32, error) {
	if x.into == nil {
		return e.Embed(ctx, x.eb)
	}
	if n := x.eb.Rows() * dim; cap(x.out) < n {
		x.out = make([]float32, n)
	}
	return x.into.EmbedInto(ctx, x.eb, x.out[:cap(x.out)])
}

// execute runs one batch and hands each row's embedding to its request;
// a request is answered when its last row is done, or at once when the
// engine fails.
func (s *Scheduler) execute(e engine.Engine, x *executor, b *batch, reqs []*request) []*request {
	eb := x.eb
	start := time.Now()
	eb.Reset()
	live := b.rows[:0]
	for _, r := range b.rows {
		// A request given up after the batch was cut is still skipped here.
		if r.req.state.Load() != stateWaiting || r.req.ctx.Err() != nil {
			continue
		}
		live = append(live, r)
		eb.Append(r.tokens())
		if r.req.lastBatch.Swap(b.seq) != b.seq {
			reqs = append(reqs, r.req)
			r.req.queueNS.CompareAndSwap(0, max(1, int64(start.Sub(r.req.enqueued))))
		}
	}
	if len(live) == 0 {
		return reqs
	}
	inputDone := time.Now()
	emb, err := x.embed(s.ctx, e, s.dim)
	inferDone := time.Now()
	if err == nil && len(emb) != len(live)*s.dim {
		err = fmt.Errorf("engine returned %d floats for %d rows of width %d", len(emb), len(live), s.dim)
	}
	if err != nil {
		s.log.Error("model execution failed", "rows", len(live), "err", err)
		for _, req := range reqs {
			s.answer(req, Errorf(Internal, "model %s version %s failed: %s", s.cfg.Name, s.cfg.Version, withoutPaths(err.Error())))
		}
		return reqs
	}
	for i, r := range live {
		copy(r.req.out[r.idx*s.dim:(r.idx+1)*s.dim], emb[i*s.dim:(i+1)*s.dim])
	}
	outputDone := time.Now()
	input, infer, output := inputDone.Sub(start), inferDone.Sub(inputDone), outputDone.Sub(inferDone)
	s.stats.executed(len(live), input, infer, output)
	s.cfg.Metrics.Execution(len(live))
	s.smooth(outputDone.Sub(start))
	for _, req := range reqs {
		req.computeInput.Add(int64(input))
		req.computeInfer.Add(int64(infer))
		req.computeOutput.Add(int64(output))
	}
	for _, r := range live {
		if r.req.remaining.Add(-1) == 0 {
			s.answer(r.req, nil)
		}
	}
	return reqs
}

// smooth folds one execution time into the moving average RetryAfter uses.
func (s *Scheduler) smooth(d time.Duration) {
	for {
		old := s.batchEWMA.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if s.batchEWMA.CompareAndSwap(old, next) {
			return
		}
	}
}
