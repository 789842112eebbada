package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCountsBeforeAnswer: the instance counts a batch's requests (success,
// inference count, queue and compute) with the batch; each request's
// counts are in the metrics and statistics by the time its Infer returns,
// and concurrent batched requests add up to the same totals as ever.
func TestCountsBeforeAnswer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	md := m.Model("tiny", "1")
	s := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: 2 * time.Millisecond, Metrics: md}, &fakeEngine{})
	counter := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	rows := 0
	for i := range 5 {
		texts := []string{"a", "bb", "ccc"}[:1+i%3]
		if _, _, err := s.Infer(context.Background(), texts); err != nil {
			t.Fatal(err)
		}
		rows += len(texts)
		if got := counter("nv_inference_request_success"); got != float64(i+1) {
			t.Fatalf("after request %d: success %v", i+1, got)
		}
		if got := counter("nv_inference_count"); got != float64(rows) {
			t.Fatalf("after request %d: inference count %v, want %d", i+1, got, rows)
		}
		if st := s.Statistics(); st.InferenceCount != uint64(rows) || st.InferenceStats.Success.Count != uint64(i+1) {
			t.Fatalf("after request %d: statistics %d texts, %d successes", i+1, st.InferenceCount, st.InferenceStats.Success.Count)
		}
	}

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Infer(context.Background(), []string{fmt.Sprint(i), "x"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := s.Statistics()
	is := st.InferenceStats
	want := uint64(5 + n)
	if st.InferenceCount != uint64(rows+2*n) || is.Success.Count != want || is.Queue.Count != want ||
		is.ComputeInput.Count != want || is.ComputeInfer.Count != want || is.ComputeOutput.Count != want {
		t.Errorf("statistics: %d texts, counts success %d queue %d compute %d/%d/%d; want %d texts, %d each",
			st.InferenceCount, is.Success.Count, is.Queue.Count, is.ComputeInput.Count, is.ComputeInfer.Count, is.ComputeOutput.Count, rows+2*n, want)
	}
	if st.ExecutionCount >= want {
		t.Errorf("execution_count %d for %d requests: nothing was batched", st.ExecutionCount, want)
	}
	if got := counter("nv_inference_request_success"); got != float64(want) {
		t.Errorf("nv_inference_request_success %v, want %d", got, want)
	}
	if got := counter("nv_inference_count"); got != float64(rows+2*n) {
		t.Errorf("nv_inference_count %v, want %d", got, rows+2*n)
	}
	// The µs counters are sums of whole µs per request: at most the
	// statistics' ns total, less than a µs a request below it.
	for name, ns := range map[string]uint64{
		"nv_inference_queue_duration_us":          is.Queue.Ns,
		"nv_inference_compute_input_duration_us":  is.ComputeInput.Ns,
		"nv_inference_compute_infer_duration_us":  is.ComputeInfer.Ns,
		"nv_inference_compute_output_duration_us": is.ComputeOutput.Ns,
		"nv_inference_request_duration_us":        is.Success.Ns,
	} {
		us, total := counter(name), float64(ns)/1e3
		if us > total || us < total-float64(want) {
			t.Errorf("%s %v, statistics %v µs over %d requests", name, us, total, want)
		}
	}
}
