package bench

import (
	"math"
	"slices"
	"time"
)

// sample is one finished request: when it completed and how long it took,
// both relative to the level's base time (nanoseconds). Kind is "" for a
// success and the error class otherwise.
type sample struct {
	end     int64
	latency int64
	kind    string
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank rule: the smallest value such that at least p% of the values
// are less than or equal to it. It returns 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Rank computed in integer per-mille steps where possible so that, for
	// example, p95 of 20 values is exactly the 19th and not a float artefact.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// Summarize sorts lat in place and returns its summary.
func Summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return Latency{
		P50:  ms(Percentile(lat, 50)),
		P90:  ms(Percentile(lat, 90)),
		P95:  ms(Percentile(lat, 95)),
		P99:  ms(Percentile(lat, 99)),
		Max:  ms(lat[len(lat)-1]),
		Mean: ms(sum / time.Duration(len(lat))),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// windowStats is what one measurement window [from, to) saw: successes and
// their latencies, and errors by kind. Only requests that completed inside
// the window count; latency is never taken from failed requests.
type windowStats struct {
	from, to  int64
	latencies []time.Duration
	errors    map[string]int
}

// collect gathers the samples of every worker that completed in [from, to).
func collect(workers [][]sample, from, to int64) windowStats {
	w := windowStats{from: from, to: to, errors: map[string]int{}}
	for _, ss := range workers {
		for _, s := range ss {
			if s.end < from || s.end >= to {
				continue
			}
			if s.kind != "" {
				w.errors[s.kind]++
				continue
			}
			w.latencies = append(w.latencies, time.Duration(s.latency))
		}
	}
	return w
}

// errorCount is the total number of errors in the window.
func (w windowStats) errorCount() int {
	n := 0
	for _, c := range w.errors {
		n += c
	}
	return n
}

// seconds is the window's length in seconds.
func (w windowStats) seconds() float64 { return float64(w.to-w.from) / float64(time.Second) }

// throughput is completed requests divided by the window's length.
func (w windowStats) throughput() float64 {
	if w.to <= w.from {
		return 0
	}
	return float64(len(w.latencies)) / w.seconds()
}

// stableWithin reports whether every value lies within frac of their mean,
// perf_analyzer's stability rule applied to the last three windows.
func stableWithin(vals []float64, frac float64) bool {
	if len(vals) == 0 {
		return false
	}
	mean := 0.0
	for _, v := range vals {
		mean += v
	}
	mean /= float64(len(vals))
	if mean == 0 {
		return false
	}
	for _, v := range vals {
		if math.Abs(v-mean) > frac*mean {
			return false
		}
	}
	return true
}
