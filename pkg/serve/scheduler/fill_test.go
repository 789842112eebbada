package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// The H200's measured batch times (docs/gpu.md): 1 row 0.40 ms, 16 rows
// 0.60 ms, 32 rows 0.68 ms, 64 rows 0.80 ms, 128 rows 1.20 ms, host share
// included.
func h200Filler() *filler {
	f := &filler{on: true}
	for _, c := range []struct {
		rows int
		ms   float64
	}{{1, 0.40}, {16, 0.60}, {32, 0.68}, {64, 0.80}, {128, 1.20}} {
		for range costTrials {
			f.tick++
			f.costs.observe(c.rows, time.Duration(c.ms*float64(time.Millisecond)), true, f.tick)
		}
	}
	return f
}

func TestSizeTable(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	f := h200Filler()
	for _, c := range []struct {
		rows int
		ms   float64
	}{
		{1, 0.40}, {16, 0.60}, {24, 0.64}, {32, 0.68}, {48, 0.74}, {128, 1.20},
		{256, 2.00}, // beyond: the slope of the last two
	} {
		got, ok := f.costs.at(c.rows, f.costTrust())
		if !ok || got.Round(time.Microsecond) != time.Duration(c.ms*1e6).Round(time.Microsecond) {
			t.Errorf("cost(%d) = %v, %v; want %.3f ms", c.rows, got, ok, c.ms)
		}
	}
	var two sizeTable
	all := trust{min: 1}
	two.observe(16, ms(0.6), true, 1)
	two.observe(32, ms(0.68), true, 1)
	if got, ok := two.at(1, all); !ok || got.Round(time.Microsecond) != ms(0.525) {
		t.Errorf("below the smallest class: at(1) = %v, %v; want 0.525 ms from the slope of 16 and 32", got, ok)
	}
	var one sizeTable
	one.observe(16, time.Millisecond, true, 1)
	if _, ok := one.at(32, all); ok {
		t.Error("one size class measured: at(32) claims to be known")
	}
	if got, ok := one.at(16, all); !ok || got != time.Millisecond {
		t.Errorf("at(16) of its own class = %v, %v", got, ok)
	}
	if _, ok := one.at(17, all); ok {
		t.Error("at(17) answers from 16's class alone")
	}
	if _, ok := one.at(16, trust{min: 2}); ok {
		t.Error("a class seen once is trusted at min 2")
	}
	if _, ok := one.at(16, trust{min: 1, since: 2}); ok {
		t.Error("a class last seen at batch 1 is trusted since batch 2")
	}
	if sizeClass(64) == sizeClass(65) || sizeClass(65) != sizeClass(127) || sizeClass(128) == sizeClass(127) {
		t.Errorf("size classes 64 %d, 65 %d, 127 %d, 128 %d", sizeClass(64), sizeClass(65), sizeClass(127), sizeClass(128))
	}
}

// A batch's time drops to a new low at once and rises towards a higher one
// slowly, at most doubling its estimate per batch.
func TestSizeTableFollowsTheLowerEnvelope(t *testing.T) {
	var c sizeTable
	all := trust{min: 1}
	c.observe(32, 50*time.Millisecond, true, 1) // the first batch captured a graph
	for range 12 {
		c.observe(32, 600*time.Microsecond, true, 1)
	}
	if got, _ := c.at(32, all); got > 620*time.Microsecond {
		t.Errorf("after 12 batches of 0.6 ms the estimate is %v", got)
	}
	c.observe(32, 100*time.Millisecond, true, 1) // one preempted batch
	if got, _ := c.at(32, all); got > 800*time.Microsecond {
		t.Errorf("one slow batch took the estimate to %v", got)
	}
}

func TestFillerWait(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	for _, c := range []struct {
		name          string
		q, out, limit int
		g, since      time.Duration // g: the idle time before a batch of q+m rows, 0 unmeasured
		want          time.Duration
		forgets       bool
	}{
		// 2·cost(16) − cost(32) = 0.52 ms > g(32) = 0.4: lock-step serves
		// more, so wait for the 16 answered; the batch of 32 is worth up to
		// 0.52 ms of idle GPU.
		{name: "c=32 split to lock-step", q: 16, out: 16, limit: 32, g: ms(0.4), since: ms(0.05), want: ms(0.52)},
		{name: "c=32 lock-step, first back", q: 1, out: 31, limit: 32, g: ms(0.4), since: ms(0.1), want: ms(1.6 - 0.1)},
		// The last row of 32 is worth 0.017 ms of idle GPU, less than a
		// straggler is expected to take.
		{name: "straggler not worth it", q: 31, out: 1, limit: 32, g: ms(0.3), since: ms(0.25), want: 0},
		// 2·cost(64) − cost(128) = 0.4 ms < g(128) = 1 ms: split serves more.
		{name: "c=128 split stays", q: 64, out: 64, limit: 128, g: ms(1.0), want: 0},
		{name: "c=128 lock-step to split", q: 1, out: 127, limit: 128, g: ms(1.0), since: ms(0.05), want: 0},
		// g(32) never measured: wait (at most a batch's time) once.
		{name: "unmeasured return", q: 16, out: 16, limit: 32, since: ms(0.1), want: ms(0.52)},
		{name: "lone client", q: 1, out: 0, limit: 32, g: ms(0.3), since: ms(0.3), want: 0},
		{name: "full", q: 32, out: 16, limit: 32, g: ms(0.3), want: 0},
		{name: "clients gone", q: 3, out: 16, limit: 32, g: ms(0.4), since: ms(1.7), want: 0, forgets: true},
		{name: "late, still worth it", q: 20, out: 12, limit: 32, g: ms(0.3), since: ms(1.15), want: ms(0.05)},
		{name: "past 4·g", q: 20, out: 12, limit: 32, g: ms(0.3), since: ms(1.25), want: 0, forgets: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := h200Filler()
			now := time.Now()
			f.sent, f.idle = []answered{{rows: c.out, end: now.Add(-c.since)}}, now.Add(-c.since)
			if n := c.q + min(c.out, c.limit-c.q); c.g > 0 {
				f.gaps.observe(n, c.g, false, f.tick)
			}
			got := f.wait(now, c.q, c.limit)
			if d := got - c.want; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("wait = %v, want %v", got, c.want)
			}
			if want := map[bool]int{false: c.out, true: 0}[c.forgets]; f.out() != want {
				t.Errorf("out = %d after the decision", f.out())
			}
		})
	}
}

// closedLoop runs clients that each send their next text think after the
// last is answered (a client's own work; it also keeps the answered clients
// from crowding the owner goroutine off a small machine's cores), the
// first alone until the engine has started its batch, so that the rest
// queue behind it; it returns the mean rows of the batches after the first
// third.
func closedLoop(t *testing.T, s *Scheduler, eng *fakeEngine, clients int, started chan struct{}, think, d time.Duration) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	client := func(i int) {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			text := fmt.Sprintf("c%d-%d", i, n)
			emb, _, err := s.Infer(context.Background(), []string{text})
			if err != nil {
				t.Error(err)
				return
			}
			checkRows(t, []string{text}, emb)
			time.Sleep(think)
		}
	}
	wg.Add(1)
	go client(0)
	if started != nil {
		<-started
	}
	for i := 1; i < clients; i++ {
		wg.Add(1)
		go client(i)
	}
	wg.Wait()
	b := eng.batches()
	if len(b) < 8 {
		t.Fatalf("only %d batches ran", len(b))
	}
	rows := 0
	var sizes []int
	for _, x := range b {
		sizes = append(sizes, x.rows)
	}
	t.Logf("batches %v", sizes)
	// The first third is start-up: each size's cost is measured twice
	// before it is trusted.
	for _, x := range b[len(b)/3:] {
		rows += x.rows
	}
	return float64(rows) / float64(len(b)-len(b)/3)
}

// Under the continuous policy, 32 closed-loop clients on one instance
// split into two alternating groups when nothing ever waits (the first
// client's batch runs alone, the rest queue behind it, and each group
// returns while the other runs). Where batches are latency-bound (a fixed
// cost well above the cost per row) and the clients return quickly,
// waiting for the answered clients merges them into full batches; where the
// round trip is longer than what a full batch saves, the groups stay.
func TestContinuousWaitsForReturningClients(t *testing.T) {
	for _, c := range []struct {
		name            string
		fixed, think    time.Duration
		noFill          bool
		minMean, maxMax float64
	}{
		{"latency-bound", 10 * time.Millisecond, 2 * time.Millisecond, false, 26, 32},
		{"latency-bound, never waiting", 10 * time.Millisecond, 2 * time.Millisecond, true, 1, 21},
		{"long round trip", time.Millisecond, 8 * time.Millisecond, false, 1, 21},
	} {
		t.Run(c.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			eng := &fakeEngine{delay: func(rows int) time.Duration {
				select {
				case started <- struct{}{}:
				default:
				}
				return c.fixed + time.Duration(rows)*100*time.Microsecond
			}}
			s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous, Fill: !c.noFill}, eng)
			mean := closedLoop(t, s, eng, 32, started, c.think, 600*time.Millisecond)
			if mean < c.minMean || mean > c.maxMax {
				t.Errorf("mean batch %.1f rows, want %.0f–%.0f", mean, c.minMean, c.maxMax)
			}
		})
	}
}

// A lone closed-loop client never waits: its own return is the only one
// the filler expects.
func TestContinuousLoneClientNeverWaits(t *testing.T) {
	eng := &fakeEngine{delay: func(int) time.Duration { return 500 * time.Microsecond }}
	s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous, Fill: true}, eng)
	closedLoop(t, s, eng, 1, nil, 0, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s.fill.waits != 0 || s.fill.tick < 20 {
		t.Errorf("%d batches, %d decisions to wait: want many and none", s.fill.tick, s.fill.waits)
	}
}

// A quiet spell before a batch counts as twice the batch's cost, not its
// length, so one pause does not rule lock-step out for hundreds of batches.
func TestFillerQuietSpellIsClamped(t *testing.T) {
	first := h200Filler()
	first.idle, first.waited = time.Now().Add(-time.Millisecond), true
	first.dispatched(time.Now(), 32)
	if _, ok := first.gaps.at(32, first.gapTrust()); ok {
		t.Error("the first wait after a batch that did not wait measured lock-step's idle time")
	}
	f := h200Filler()
	now := time.Now()
	f.idle, f.waited, f.prevWaited = now.Add(-10*time.Second), true, true
	f.dispatched(now, 32)
	if g, ok := f.gaps.at(32, f.gapTrust()); !ok || g != 2*680*time.Microsecond {
		t.Errorf("idle time before a batch of 32 after a 10 s pause = %v, %v; want 1.36 ms", g, ok)
	}
}

// Lock-step is chosen only against a trusted cost of half the batch: a
// size last run thousands of batches ago (at start-up, when its batch
// captured graphs) is run again rather than believed.
func TestFillerMeasuresHalfBatchesBeforeLockStep(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	f := &filler{on: true}
	observe := func(rows int, d time.Duration) {
		for range costTrials {
			f.tick++
			f.costs.observe(rows, d, true, f.tick)
		}
	}
	observe(1, ms(0.4))
	for f.tick < costFresh+10 {
		observe(128, ms(1.2))
	}
	now := time.Now()
	f.sent, f.idle = []answered{{rows: 127, end: now.Add(-ms(0.05))}}, now.Add(-ms(0.05))
	f.gaps.observe(128, ms(0.3), false, f.tick)
	if w := f.wait(now, 1, 128); w != 0 {
		t.Errorf("with 1 row's cost stale, waited %v; want the batch run now, to measure", w)
	}
	observe(1, ms(0.4)) // 64 rows: 0.80 ms between 1 and 128, worth 0.4 ms of idle > 0.3
	if w := f.wait(now, 1, 128); w <= 0 {
		t.Error("with fresh costs showing lock-step pays, did not wait")
	}
}

// coldEngine is a fakeEngine whose every batch is cold
// (engine.ColdCounter): it compiles, times or captures each time.
type coldEngine struct {
	*fakeEngine
	runs atomic.Uint64
}

func (c *coldEngine) Embed(ctx context.Context, b *engine.Batch) ([]float32, error) {
	c.runs.Add(1)
	return c.fakeEngine.Embed(ctx, b)
}

func (c *coldEngine) ColdRuns() uint64 { return c.runs.Load() }

// A cold batch's time is not a cost: with only cold batches the filler
// knows no cost and never waits.
func TestFillerLeavesColdBatchesOut(t *testing.T) {
	eng := &coldEngine{fakeEngine: &fakeEngine{delay: func(rows int) time.Duration {
		return 2*time.Millisecond + time.Duration(rows)*10*time.Microsecond
	}}}
	s := startEngines(t, Config{Name: "tiny", Version: "1", MaxBatchSize: 32, Policy: PolicyContinuous, Fill: true}, []engine.Engine{eng})
	closedLoop(t, s, eng.fakeEngine, 8, nil, 0, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.fill.costs.at(8, trust{min: 1}); ok || s.fill.waits != 0 || s.fill.tick == 0 {
		t.Errorf("after %d cold batches: a cost is known (%v) or %d waits", s.fill.tick, ok, s.fill.waits)
	}
}

// Under split cycles two groups are on their way back at once: a row queued
// after a batch's end returns one of its rows, the oldest batch's first, and
// the rows still out are both groups'. A row queued after an end the owner
// has not heard of yet counts when it does, once.
func TestFillerCountsBothGroupsOut(t *testing.T) {
	f := &filler{on: true}
	t0 := time.Now()
	at := func(d time.Duration, n int) []row {
		rows := make([]row, n)
		for i := range rows {
			rows[i] = row{req: &request{enqueued: t0.Add(d)}}
		}
		return rows
	}
	ms := time.Millisecond
	f.completed(t0, freed{rows: 16, end: t0}, nil)
	f.arrived(t0, at(ms, 10)) // 10 of the first group back
	early := at(3*ms, 2)      // queued after the second batch's end, pulled before the owner heard of it
	f.arrived(t0, early)
	if got := f.out(); got != 4 {
		t.Fatalf("out = %d before the second batch's end, want 4", got)
	}
	f.completed(t0, freed{rows: 16, end: t0.Add(2 * ms)}, early)
	if got := f.out(); got != 4+16 {
		t.Fatalf("out = %d after the second batch's end, want 20: the two early rows were the first group's", got)
	}
	f.completed(t0, freed{rows: 16, end: t0.Add(2 * ms)}, early) // held again at a later end: not recounted
	f.arrived(t0, at(4*ms, 8))
	if got := f.out(); got != 4+16+16-8 {
		t.Fatalf("out = %d, want 28", got)
	}
}
