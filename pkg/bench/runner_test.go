package bench

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"
)

const msNs = time.Millisecond

func TestClosedLoopWindowArithmeticExact(t *testing.T) {
	cases := []struct {
		name       string
		latencies  []time.Duration
		fail       map[int]error
		warmup     time.Duration
		duration   time.Duration
		requests   int
		errs       map[string]int
		throughput float64
		latency    Latency
		sent, oks  int
	}{
		{
			// ends at 7, 14, … 112; the window [10ms, 110ms) holds 14..105.
			name: "constant latency counts completions inside the window", latencies: []time.Duration{7 * msNs},
			warmup: 10 * msNs, duration: 100 * msNs,
			requests: 14, errs: map[string]int{}, throughput: 140,
			latency: Latency{P50: 7, P90: 7, P95: 7, P99: 7, Max: 7, Mean: 7},
			sent:    16, oks: 16,
		},
		{
			// ends at 10, 30, 60(503), 100, 110, 130; window [15ms, 115ms)
			// holds 30, 60, 100, 110: three successes (20, 40, 10 ms) and one
			// error; the request started at 110 ends after the window.
			name: "errors are counted by kind and kept out of latencies", latencies: []time.Duration{10 * msNs, 20 * msNs, 30 * msNs, 40 * msNs},
			fail:   map[int]error{2: errScripted503},
			warmup: 15 * msNs, duration: 100 * msNs,
			requests: 3, errs: map[string]int{"http_503": 1}, throughput: 30,
			latency: Latency{P50: 20, P90: 40, P95: 40, P99: 40, Max: 40, Mean: ms(70 * msNs / 3)},
			sent:    6, oks: 5,
		},
		{
			name: "connection errors are classified", latencies: []time.Duration{25 * msNs},
			fail:   map[int]error{1: errScriptedConn, 2: context.DeadlineExceeded},
			warmup: 0, duration: 100 * msNs,
			// ends 25, 50(other), 75(timeout), 100(excluded: end is exclusive)
			requests: 1, errs: map[string]int{"other": 1, "timeout": 1}, throughput: 10,
			latency: Latency{P50: 25, P90: 25, P95: 25, P99: 25, Max: 25, Mean: 25},
			sent:    4, oks: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newManualClock()
			cl := &scriptedClient{clock: clk, latencies: c.latencies, fail: c.fail}
			res, err := Run(context.Background(), Config{
				Concurrency: []int{1}, Warmup: c.warmup, Duration: c.duration, Clock: clk, Client: cl,
			})
			if err != nil {
				t.Fatal(err)
			}
			lv := res.Levels[0]
			if lv.Requests != c.requests || lv.Throughput != c.throughput || lv.DurationS != c.duration.Seconds() {
				t.Errorf("requests %d throughput %v duration %v, want %d %v %v", lv.Requests, lv.Throughput, lv.DurationS, c.requests, c.throughput, c.duration.Seconds())
			}
			if lv.Latency != c.latency {
				t.Errorf("latency %+v, want %+v", lv.Latency, c.latency)
			}
			if lv.Errors != sum(c.errs) || len(lv.ErrorsByKind) != len(c.errs) {
				t.Errorf("errors %d %v, want %v", lv.Errors, lv.ErrorsByKind, c.errs)
			}
			for k, v := range c.errs {
				if lv.ErrorsByKind[k] != v {
					t.Errorf("errors[%s] = %d, want %d", k, lv.ErrorsByKind[k], v)
				}
			}
			if lv.Sent != c.sent || lv.Succeeded != c.oks {
				t.Errorf("sent %d succeeded %d, want %d %d", lv.Sent, lv.Succeeded, c.sent, c.oks)
			}
		})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestStableModeRepeatsWindowsUntilThreeAgree(t *testing.T) {
	cases := []struct {
		name       string
		latencies  []time.Duration
		maxWindows int
		windows    int
		stable     bool
		requests   int
		durationS  float64
	}{
		{
			// windows of 50 ms: 4 (10..40), then 5, 5, 5 completions: the first
			// three (80, 100, 100 /s) disagree, windows 2-4 agree.
			name: "settles after a slow first window", latencies: []time.Duration{10 * msNs},
			maxWindows: 10, windows: 4, stable: true, requests: 15, durationS: 0.15,
		},
		{
			// 4, 2, 5, 2, 5 completions per window: never within 10%.
			name: "gives up after max windows", latencies: []time.Duration{10 * msNs, 10 * msNs, 10 * msNs, 10 * msNs, 10 * msNs, 25 * msNs, 25 * msNs},
			maxWindows: 5, windows: 5, stable: false, requests: 12, durationS: 0.15,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newManualClock()
			cl := &scriptedClient{clock: clk, latencies: c.latencies}
			res, err := Run(context.Background(), Config{
				Concurrency: []int{1}, Stable: true, Window: 50 * msNs, MaxWindows: c.maxWindows, Logger: slog.New(slog.DiscardHandler),
				Clock: clk, Client: cl,
			})
			if err != nil {
				t.Fatal(err)
			}
			lv := res.Levels[0]
			if lv.Windows != c.windows || lv.Stable == nil || *lv.Stable != c.stable {
				t.Errorf("windows %d stable %v, want %d %v", lv.Windows, *lv.Stable, c.windows, c.stable)
			}
			if lv.Requests != c.requests || math.Abs(lv.DurationS-c.durationS) > 1e-12 {
				t.Errorf("requests %d over %vs, want %d over %vs", lv.Requests, lv.DurationS, c.requests, c.durationS)
			}
		})
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	cl := &scriptedClient{clock: newManualClock(), latencies: []time.Duration{msNs}}
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no levels", Config{Duration: time.Second, Client: cl}},
		{"no duration", Config{Concurrency: []int{1}, Client: cl}},
		{"no client", Config{Concurrency: []int{1}, Duration: time.Second}},
		{"stable with rate", Config{Concurrency: []int{1}, Stable: true, Rates: []float64{10}, Client: cl}},
		{"stable with too few windows", Config{Concurrency: []int{1}, Stable: true, MaxWindows: 2, Client: cl}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Run(context.Background(), c.cfg); err == nil {
				t.Error("Run accepted a bad configuration")
			}
		})
	}
}

func TestArrivalsArePoissonAtTheRate(t *testing.T) {
	a := NewArrivals(1000, 42)
	const n = 200000
	var total int64
	for range n {
		total += a.Next()
	}
	mean := float64(total) / n / float64(time.Millisecond)
	if math.Abs(mean-1) > 0.01 {
		t.Errorf("mean gap %.4f ms at 1000/s, want 1 ms within 1%%", mean)
	}
	b, c := NewArrivals(1000, 7), NewArrivals(1000, 7)
	for range 100 {
		if b.Next() != c.Next() {
			t.Fatal("the same seed gave different arrivals")
		}
	}
}

// slowClient takes d of real time per request.
type slowClient struct{ d time.Duration }

func (s slowClient) Do(ctx context.Context, i int) error {
	select {
	case <-time.After(s.d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (slowClient) Close() error { return nil }

func TestOpenLoopMeasuresFromTheIntendedSendTime(t *testing.T) {
	// Arrivals at 400/s against one sender that needs 5 ms: the backlog
	// grows, and so must the latencies (a closed loop would report ~5 ms).
	res, err := Run(context.Background(), Config{
		Concurrency: []int{1}, Rates: []float64{400}, Duration: 200 * msNs, Client: slowClient{5 * msNs}, Seed: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	lv := res.Levels[0]
	if res.Mode != "open" || lv.Rate != 400 || lv.Requests == 0 {
		t.Fatalf("open-loop level = %+v", lv)
	}
	if lv.Latency.Max < 20 {
		t.Errorf("max latency %.1f ms: queueing behind a 5 ms sender was hidden (coordinated omission)", lv.Latency.Max)
	}
	if lv.Sent != lv.Succeeded {
		t.Errorf("sent %d, succeeded %d", lv.Sent, lv.Succeeded)
	}
}
