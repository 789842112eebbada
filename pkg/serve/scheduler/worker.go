package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// instance runs batches on its own engine until the owner closes the work
// channel. One engine per instance: engines are not safe for concurrent use.
// An engine that overlaps batches (engine.Pipeliner, the CUDA engine) runs
// pipelined instead.
func (s *Scheduler) instance(e engine.Engine) {
	if p, ok := e.(engine.Pipeliner); ok && p.Pipelined() {
		s.pipelined(p)
		return
	}
	x := newExecutor(e)
	cold, _ := e.(engine.ColdCounter)
	for b := range s.work {
		var fr freed
		if s.stage(x, b) {
			var before uint64
			if cold != nil {
				before = cold.ColdRuns()
			}
			emb, err := x.embed(s.ctx, e, s.dim)
			fr = freed{rows: len(x.live), sent: b.sent, end: x.inferDone,
				cold: cold != nil && cold.ColdRuns() != before}
			s.finish(x, emb, err)
		}
		x.reset()
		s.free <- fr
	}
}

// pipelined runs an instance whose engine overlaps batches: a submitter
// stages and queues each batch the owner hands it, and a completer waits
// for each in turn. The completer gives the owner its "instance free" token
// back as soon as the GPU nears the end of a batch (Pipeliner.Nearly), not
// when the batch is done, so the next batch is cut from everything that
// queued meanwhile, staged and queued on the GPU before it runs dry: a
// serving cycle then costs the GPU's time rather than the GPU's plus the
// host's, and the rows that arrive during one batch still form the next
// (cutting it at submission instead would split the clients into more,
// smaller batches, and small batches cost the GPU nearly as much as full
// ones). At most two batches are in flight.
func (s *Scheduler) pipelined(p engine.Pipeliner) {
	execs := make(chan *executor, 2)
	for range 2 {
		x := newExecutor(nil)
		x.awaiter, _ = p.(engine.TextPipeliner)
		execs <- x
	}
	flights := make(chan *executor, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for x := range flights {
			if x.err == nil {
				_ = p.Nearly(x.ticket) // a failure shows in Await
			}
			s.free <- freed{}
			emb, err := []float32(nil), x.err
			if err == nil {
				if x.eb.Text && x.awaiter != nil {
					emb, err = x.awaiter.AwaitText(x.ticket, x.out[:cap(x.out)], &x.text)
				} else {
					emb, err = p.Await(x.ticket, x.out[:cap(x.out)])
				}
				if err == nil {
					x.out = emb[:cap(emb)]
				}
			}
			x.inferDone = time.Now()
			s.finish(x, emb, err)
			x.reset()
			execs <- x
		}
	}()
	for b := range s.work {
		x := <-execs
		if !s.stage(x, b) {
			x.reset()
			execs <- x
			s.free <- freed{}
			continue
		}
		x.ticket, x.err = p.Submit(s.ctx, x.eb)
		x.inputDone = time.Now()
		flights <- x
	}
	close(flights)
	<-done
}

// executor is one batch's reusable state: nothing on the path of a batch
// allocates once these have grown to the largest batch.
type executor struct {
	eb   *engine.Batch
	reqs []*request
	live []row
	// answered are the requests finish completes, woken once counted.
	answered []*request
	into     engine.IntoEmbedder // nil when the engine allocates its results
	out      []float32           // into's (or Await's) destination
	// texter writes the rows' JSON text too (nil: the engine cannot);
	// eb.Text says whether this batch has a row that asked for it.
	texter  engine.TextEmbedder
	awaiter engine.TextPipeliner // pipelined: the text's Await
	text    engine.Text

	start, inputDone, inferDone time.Time
	ticket                      engine.Ticket // pipelined: the batch in flight
	err                         error         // pipelined: Submit's error
}

func newExecutor(e engine.Engine) *executor {
	x := &executor{eb: &engine.Batch{}}
	x.into, _ = e.(engine.IntoEmbedder)
	x.texter, _ = e.(engine.TextEmbedder)
	return x
}

func (x *executor) reset() {
	clear(x.reqs)
	x.reqs = x.reqs[:0]
	clear(x.live)
	x.live = x.live[:0]
	clear(x.answered)
	x.answered = x.answered[:0]
	x.err = nil
	releaseText(&x.text)
	x.text.Reset()
}

func (x *executor) embed(ctx context.Context, e engine.Engine, dim int) ([]float32, error) {
	defer func() { x.inferDone = time.Now() }()
	useText := x.eb.Text && x.texter != nil
	if x.into == nil && !useText {
		return e.Embed(ctx, x.eb)
	}
	if n := x.eb.Rows() * dim; cap(x.out) < n {
		x.out = make([]float32, n)
	}
	if useText {
		return x.texter.EmbedText(ctx, x.eb, x.out[:cap(x.out)], &x.text)
	}
	return x.into.EmbedInto(ctx, x.eb, x.out[:cap(x.out)])
}

// stage builds x's engine batch from the rows of b still wanted and says
// whether any are.
func (s *Scheduler) stage(x *executor, b *batch) bool {
	eb := x.eb
	x.start = time.Now()
	eb.Reset()
	eb.Text, eb.TextOnly = false, true
	for _, r := range b.rows {
		// A request given up after the batch was cut is still skipped here.
		if r.req.state.Load() != stateWaiting || r.req.ctx.Err() != nil {
			continue
		}
		x.live = append(x.live, r)
		eb.Append(r.tokens())
		eb.Text = eb.Text || r.req.text != nil
		eb.TextOnly = eb.TextOnly && r.req.text != nil
		if r.req.lastBatch.Swap(b.seq) != b.seq {
			x.reqs = append(x.reqs, r.req)
			r.req.queueNS.CompareAndSwap(0, max(1, int64(x.start.Sub(r.req.enqueued))))
		}
	}
	eb.TextOnly = eb.TextOnly && eb.Text
	x.inputDone = time.Now()
	return len(x.live) > 0
}

// finish hands each row's embedding to its request; a request is answered
// when its last row is done, or at once when the engine failed.
func (s *Scheduler) finish(x *executor, emb []float32, err error) {
	live := x.live
	if err == nil && len(emb) != len(live)*s.dim {
		err = fmt.Errorf("engine returned %d floats for %d rows of width %d", len(emb), len(live), s.dim)
	}
	if err != nil {
		s.log.Error("model execution failed", "rows", len(live), "err", err)
		for _, req := range x.reqs {
			s.answer(req, Errorf(Internal, "model %s version %s failed: %s", s.cfg.Name, s.cfg.Version, withoutPaths(err.Error())))
		}
		return
	}
	// Every row of a text-only batch that came back with its text is
	// answered from the text; its floats are not read (and the engine may
	// not have written them, engine.Batch.TextOnly).
	if !x.eb.TextOnly || len(x.text.Rows) != len(live) {
		for i, r := range live {
			copy(r.req.floats(s.dim)[r.idx*s.dim:(r.idx+1)*s.dim], emb[i*s.dim:(i+1)*s.dim])
		}
	}
	s.handText(x)
	outputDone := time.Now()
	input, infer, output := x.inputDone.Sub(x.start), x.inferDone.Sub(x.inputDone), outputDone.Sub(x.inferDone)
	s.stats.executed(len(live), input, infer, output)
	s.cfg.Metrics.Execution(len(live))
	s.smooth(outputDone.Sub(x.start))
	for _, req := range x.reqs {
		req.computeInput.Add(int64(input))
		req.computeInfer.Add(int64(infer))
		req.computeOutput.Add(int64(output))
	}
	// A request whose last row this was is answered: claimed first, so
	// that a caller giving up now records a failure and is not counted,
	// then counted with the batch, then woken, so that its answer never
	// goes out before its counts.
	var sums answerSums
	for _, r := range live {
		if r.req.remaining.Add(-1) == 0 && r.req.state.CompareAndSwap(stateWaiting, stateAnswered) {
			sums.add(r.req)
			x.answered = append(x.answered, r.req)
		}
	}
	s.answered(&sums)
	for _, req := range x.answered {
		close(req.done) // req.err stays nil: a success
	}
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
