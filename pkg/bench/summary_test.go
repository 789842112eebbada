package bench

import (
	"testing"
	"time"
)

func durs(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	cases := []struct {
		name string
		vals []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty is zero", nil, 95, 0},
		{"single value is every percentile", durs(7), 50, 7 * time.Millisecond},
		{"p50 of 1..10 is the 5th", seq(10), 50, 5 * time.Millisecond},
		{"p90 of 1..10 is the 9th", seq(10), 90, 9 * time.Millisecond},
		{"p95 of 1..10 rounds up to the 10th", seq(10), 95, 10 * time.Millisecond},
		{"p95 of 1..20 is exactly the 19th", seq(20), 95, 19 * time.Millisecond},
		{"p99 of 1..100 is the 99th", seq(100), 99, 99 * time.Millisecond},
		{"p99 of 1..1000 is the 990th", seq(1000), 99, 990 * time.Millisecond},
		{"p100 is the max", seq(10), 100, 10 * time.Millisecond},
		{"tiny p is the min", seq(10), 0.01, 1 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Percentile(c.vals, c.p); got != c.want {
				t.Errorf("Percentile(%d values, %g) = %v, want %v", len(c.vals), c.p, got, c.want)
			}
		})
	}
}

func TestSummarizeSortsAndSummarises(t *testing.T) {
	lat := durs(40, 10, 30, 20, 100, 60, 50, 90, 80, 70) // 10..100 shuffled
	got := Summarize(lat)
	want := Latency{P50: 50, P90: 90, P95: 100, P99: 100, Max: 100, Mean: 55}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("empty summary is not zero")
	}
}

func TestCollectCountsOnlyCompletionsInsideTheWindow(t *testing.T) {
	ms := int64(time.Millisecond)
	workers := [][]sample{
		{{end: 5 * ms, latency: 5 * ms}, {end: 10 * ms, latency: 5 * ms}, {end: 15 * ms, latency: 5 * ms}},
		{{end: 9 * ms, latency: 9 * ms}, {end: 18 * ms, latency: 9 * ms, kind: "http_503"}, {end: 20 * ms, latency: 2 * ms}},
		{{end: 12 * ms, latency: 12 * ms, kind: "timeout"}, {end: 25 * ms, latency: 13 * ms}},
	}
	cases := []struct {
		name           string
		from, to       int64
		ok             int
		errs           map[string]int
		throughputWant float64
	}{
		{"window start is inclusive", 10 * ms, 20 * ms, 2, map[string]int{"http_503": 1, "timeout": 1}, 200},
		{"window end is exclusive", 10 * ms, 21 * ms, 3, map[string]int{"http_503": 1, "timeout": 1}, 3 / 0.011},
		{"warm-up completions excluded", 0, 10 * ms, 2, map[string]int{}, 200},
		{"tail after the window excluded", 20 * ms, 25 * ms, 1, map[string]int{}, 200},
		{"empty window", 30 * ms, 40 * ms, 0, map[string]int{}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := collect(workers, c.from, c.to)
			if len(w.latencies) != c.ok {
				t.Errorf("successes = %d, want %d", len(w.latencies), c.ok)
			}
			if len(w.errors) != len(c.errs) {
				t.Errorf("errors = %v, want %v", w.errors, c.errs)
			}
			for k, v := range c.errs {
				if w.errors[k] != v {
					t.Errorf("errors[%s] = %d, want %d", k, w.errors[k], v)
				}
			}
			if got := w.throughput(); got != c.throughputWant {
				t.Errorf("throughput = %v, want %v", got, c.throughputWant)
			}
		})
	}
}

func TestStableWithin(t *testing.T) {
	cases := []struct {
		name string
		vals []float64
		want bool
	}{
		{"identical", []float64{100, 100, 100}, true},
		{"all within 10% of the mean", []float64{95, 100, 105}, true},
		{"one 14% below the mean", []float64{100, 100, 80}, false},
		{"all zero is not stable", []float64{0, 0, 0}, false},
		{"none", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := stableWithin(c.vals, 0.10); got != c.want {
				t.Errorf("stableWithin(%v) = %v, want %v", c.vals, got, c.want)
			}
		})
	}
}
