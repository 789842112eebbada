package scheduler

import (
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
)

// answerSums are what the requests a batch completes add to the totals over
// requests (the statistics' inference count, queue and compute durations,
// the metrics' counters): the instance records them once per batch, before
// it wakes the callers. Each caller recording its own had every core that
// woke with an answer write the same lock and counters at once; a caller
// still records its own latency, which only it knows (record).
type answerSums struct {
	requests, rows              int
	queue, input, infer, output time.Duration // sums over the requests, each clamped at 0 as duration.add does
	metrics                     metrics.Answers
}

func (a *answerSums) add(req *request) {
	queue := time.Duration(req.queueNS.Load())
	in, inf, out := time.Duration(req.computeInput.Load()), time.Duration(req.computeInfer.Load()), time.Duration(req.computeOutput.Load())
	a.requests++
	a.rows += req.rows()
	a.queue += max(queue, 0)
	a.input += max(in, 0)
	a.infer += max(inf, 0)
	a.output += max(out, 0)
	a.metrics.Add(req.rows(), queue, in, inf, out)
}

// answered records sums in the statistics and metrics.
func (s *Scheduler) answered(a *answerSums) {
	if a.requests == 0 {
		return
	}
	s.stats.answered(a)
	s.cfg.Metrics.Answered(&a.metrics)
}
