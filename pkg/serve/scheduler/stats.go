package scheduler

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// stats accumulates what Triton's statistics extension reports for a model
// version: per-request success/fail/queue/compute durations (a request in a
// batch is charged the batch's compute times), per-batch-size execution
// times, inference_count (texts) and execution_count (batches).
type stats struct {
	mu             sync.Mutex
	lastInference  time.Time
	inferenceCount uint64
	executionCount uint64
	fail           duration
	// success (count and ns) is added by each caller without the lock;
	// Statistics reads it with the rest.
	successN, successNS atomic.Uint64
	queue               duration
	input, infer        duration
	output              duration
	batches             map[int]*batchStat
}

type duration struct{ count, ns uint64 }

func (d *duration) add(t time.Duration) {
	d.count++
	d.ns += uint64(max(t, 0))
}

func (d duration) proto() *tritonpb.StatisticDuration {
	return &tritonpb.StatisticDuration{Count: d.count, Ns: d.ns}
}

type batchStat struct{ input, infer, output duration }

// answered counts a batch's successful requests but for their latency
// (completed): once per batch, from the instance (answerSums).
func (s *stats) answered(a *answerSums) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastInference = time.Now()
	s.inferenceCount += uint64(a.rows)
	n := uint64(a.requests)
	s.queue.count, s.queue.ns = s.queue.count+n, s.queue.ns+uint64(a.queue)
	s.input.count, s.input.ns = s.input.count+n, s.input.ns+uint64(a.input)
	s.infer.count, s.infer.ns = s.infer.count+n, s.infer.ns+uint64(a.infer)
	s.output.count, s.output.ns = s.output.count+n, s.output.ns+uint64(a.output)
}

// completed adds a successful request's latency, arrival to answer, from
// its caller: atomics, not the lock, since the callers of a batch wake
// together on every core.
func (s *stats) completed(total time.Duration) {
	s.successN.Add(1)
	s.successNS.Add(uint64(max(total, 0)))
}

func (s *stats) failed(arrived time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail.add(time.Since(arrived))
}

func (s *stats) executed(rows int, input, infer, output time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.executionCount++
	b := s.batches[rows]
	if b == nil {
		b = &batchStat{}
		s.batches[rows] = b
	}
	b.input.add(input)
	b.infer.add(infer)
	b.output.add(output)
}

// Statistics returns the model version's cumulative statistics in Triton's
// ModelStatistics form (batch_stats sorted by batch size).
func (s *Scheduler) Statistics() *tritonpb.ModelStatistics {
	st := &s.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	ms := &tritonpb.ModelStatistics{
		Name:           s.cfg.Name,
		Version:        s.cfg.Version,
		InferenceCount: st.inferenceCount,
		ExecutionCount: st.executionCount,
		InferenceStats: &tritonpb.InferStatistics{
			Success:       &tritonpb.StatisticDuration{Count: st.successN.Load(), Ns: st.successNS.Load()},
			Fail:          st.fail.proto(),
			Queue:         st.queue.proto(),
			ComputeInput:  st.input.proto(),
			ComputeInfer:  st.infer.proto(),
			ComputeOutput: st.output.proto(),
			CacheHit:      &tritonpb.StatisticDuration{},
			CacheMiss:     &tritonpb.StatisticDuration{},
		},
	}
	if !st.lastInference.IsZero() {
		ms.LastInference = uint64(st.lastInference.UnixMilli())
	}
	sizes := make([]int, 0, len(st.batches))
	for n := range st.batches {
		sizes = append(sizes, n)
	}
	sort.Ints(sizes)
	for _, n := range sizes {
		b := st.batches[n]
		ms.BatchStats = append(ms.BatchStats, &tritonpb.InferBatchStatistics{
			BatchSize:     uint64(n),
			ComputeInput:  b.input.proto(),
			ComputeInfer:  b.infer.proto(),
			ComputeOutput: b.output.proto(),
		})
	}
	return ms
}

// Pending returns the number of requests accepted and not yet answered, the
// value behind nv_inference_pending_request_count. Tests and drains use it to
// know a request is inside the scheduler rather than guessing with a sleep.
func (s *Scheduler) Pending() int { return int(s.inflight.Load()) }
