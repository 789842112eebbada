package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTritonNamesAndValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	md := m.Model("m3e", "1")
	md.Enqueued(3)
	md.Pending(1)
	md.Execution(4)
	md.Request(true, 4, 3*time.Millisecond, time.Millisecond, 100*time.Microsecond, 1500*time.Microsecond, 50*time.Microsecond)
	md.Request(false, 1, time.Millisecond, 0, 0, 0, 0)
	md.Failed(Rejected, time.Millisecond)
	md.Failed(Rejected, time.Millisecond)

	want := `
# HELP nv_inference_count Number of inferences performed (each text of a request counts once)
# TYPE nv_inference_count counter
nv_inference_count{model="m3e",version="1"} 4
# HELP nv_inference_exec_count Number of model executions performed (a dynamic batch counts once)
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="m3e",version="1"} 1
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="m3e",version="1"} 1
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="m3e",reason="BACKEND",version="1"} 0
nv_inference_request_failure{model="m3e",reason="CANCELED",version="1"} 0
nv_inference_request_failure{model="m3e",reason="OTHER",version="1"} 1
nv_inference_request_failure{model="m3e",reason="REJECTED",version="1"} 2
# HELP nv_inference_request_duration_us Cumulative inference request duration in microseconds (includes queue)
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="m3e",version="1"} 3000
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="m3e",version="1"} 1000
# HELP nv_inference_compute_infer_duration_us Cumulative compute inference duration in microseconds
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="m3e",version="1"} 1500
# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="m3e",version="1"} 1
`
	names := []string{"nv_inference_count", "nv_inference_exec_count", "nv_inference_request_success",
		"nv_inference_request_failure", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
		"nv_inference_compute_infer_duration_us", "nv_inference_pending_request_count"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	for name, series := range map[string]int{"m3ectl_batch_size": 1, "m3ectl_request_duration_seconds": 1, "m3ectl_queue_depth": 1} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != series {
			t.Errorf("%s: %d series (%v), want %d", name, n, err, series)
		}
	}

	md.Delete()
	if n, _ := testutil.GatherAndCount(reg, "nv_inference_count"); n != 0 {
		t.Errorf("after Delete %d series remain", n)
	}
}

func TestSecondManagerSharesRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(reg)
	if err != nil {
		t.Fatalf("second New on one registry: %v", err)
	}
	a.Model("x", "1").Execution(2)
	b.Model("x", "1").Execution(2)
	if v := testutil.ToFloat64(a.execCount.WithLabelValues("x", "1")); v != 2 {
		t.Errorf("shared exec count %v, want 2", v)
	}
}

func TestNilIsANoOp(t *testing.T) {
	var m *Metrics
	md := m.Model("x", "1")
	md.Request(true, 1, time.Second, 0, 0, 0, 0)
	md.Execution(1)
	md.Enqueued(1)
	md.Pending(1)
	md.Delete()
	unregistered, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	unregistered.Model("x", "1").Execution(1)
}

// TestAnsweredSumsWholeMicroseconds: a batch's Answers add what one
// Request call per request adds, each request's times cut to whole µs.
func TestAnsweredSumsWholeMicroseconds(t *testing.T) {
	each, batched := prometheus.NewRegistry(), prometheus.NewRegistry()
	m1, err := New(each)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := New(batched)
	if err != nil {
		t.Fatal(err)
	}
	one, all := m1.Model("m3e", "1"), m2.Model("m3e", "1")
	var a Answers
	for i := range 3 {
		d := time.Duration(1500+i*700) * time.Nanosecond
		one.Request(true, i+1, 10*d, d, 2*d, 3*d, 4*d)
		a.Add(i+1, d, 2*d, 3*d, 4*d)
		all.Completed(10 * d)
	}
	all.Answered(&a)
	for _, name := range []string{"nv_inference_count", "nv_inference_request_success", "nv_inference_request_duration_us",
		"nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
		"nv_inference_compute_output_duration_us", "m3ectl_request_duration_seconds"} {
		got, want := gathered(t, batched, name), gathered(t, each, name)
		if got == "" || got != want {
			t.Errorf("%s batched:\n%s\none by one:\n%s", name, got, want)
		}
	}
}

// gathered is the family name of reg as text, without its creation times.
func gathered(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				c.CreatedTimestamp = nil
			}
			if h := m.GetHistogram(); h != nil {
				h.CreatedTimestamp = nil
			}
		}
		return mf.String()
	}
	return ""
}

// Request records one answered request as the scheduler does: a failure
// whole, a success as its batch's counts plus its latency.
func (m *Model) Request(ok bool, rows int, total, queue, input, infer, output time.Duration) {
	if m == nil {
		return
	}
	if !ok {
		m.Failed(Other, total)
		return
	}
	var a Answers
	a.Add(rows, queue, input, infer, output)
	m.Answered(&a)
	m.Completed(total)
}
