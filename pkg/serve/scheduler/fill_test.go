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

// closeNow closes s, so that its owner goroutine's state (s.fill) may be
// read.
func closeNow(t *testing.T, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// testPick makes the picker's windows fit a test's second of fake
// batches of a few milliseconds each.
var testPick = pickParams{
	window: 40 * time.Millisecond, stale: time.Second, hold: 300 * time.Millisecond,
	batches: 3, settle: 1, margin: 0.02,
}

// Under the continuous policy, 32 closed-loop clients on one instance
// split into two alternating groups when nothing ever waits (the first
// client's batch runs alone, the rest queue behind it, and each group
// returns while the other runs). Where batches are latency-bound (a fixed
// cost well above the cost per row) and the clients return quickly,
// lock-step (waiting for the answered clients) answers more rows per
// second and is kept; where the batches are bound by their rows and the
// round trip is long, the groups overlap one's round trip with the
// other's batch, and split is kept. Either way the picker measured both.
func TestContinuousWaitsForReturningClients(t *testing.T) {
	for _, c := range []struct {
		name                 string
		fixed, perRow, think time.Duration
		noWait, lock         bool
		minMean, maxMean     float64
	}{
		{"latency-bound", 4 * time.Millisecond, 50 * time.Microsecond, time.Millisecond, false, true, 26, 32},
		{"latency-bound, never waiting", 4 * time.Millisecond, 50 * time.Microsecond, time.Millisecond, true, false, 1, 21},
		{"row-bound, long round trip", 0, 200 * time.Microsecond, 4 * time.Millisecond, false, false, 1, 24},
	} {
		t.Run(c.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			eng := &fakeEngine{delay: func(rows int) time.Duration {
				select {
				case started <- struct{}{}:
				default:
				}
				return c.fixed + time.Duration(rows)*c.perRow
			}}
			s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous, NoWait: c.noWait, pick: testPick}, eng)
			mean := closedLoop(t, s, eng, 32, started, c.think, 1200*time.Millisecond)
			closeNow(t, s)
			p := &s.fill.pick
			t.Logf("rows/s: lock-step %.0f, split %.0f; chosen lock-step %v", p.rate(true), p.rate(false), p.best)
			if !c.noWait && (p.measured[0] == 0 || p.measured[1] == 0) {
				t.Fatalf("no exploration measured both cycles: %v rows/s", p.measured)
			}
			if p.best != c.lock {
				t.Errorf("lock-step chosen %v, want %v", p.best, c.lock)
			}
			if mean < c.minMean || mean > c.maxMean {
				t.Errorf("mean batch %.1f rows, want %.0f–%.0f", mean, c.minMean, c.maxMean)
			}
		})
	}
}

// Two instances on one GPU (batches run one at a time, as two instances'
// batches share an H200's SMs): never waiting, the clients split into
// groups, one per instance; lock-step waits for the other instance's
// clients too and runs one batch of all of them at a time.
func TestContinuousLockStepAcrossInstances(t *testing.T) {
	var gpu sync.Mutex
	started := make(chan struct{}, 1)
	delay := func(rows int) time.Duration {
		select {
		case started <- struct{}{}:
		default:
		}
		gpu.Lock()
		time.Sleep(3*time.Millisecond + time.Duration(rows)*30*time.Microsecond) // two overlapping stay under longBatch
		gpu.Unlock()
		return 0
	}
	a, b := &fakeEngine{delay: delay}, &fakeEngine{delay: delay}
	s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous, pick: testPick}, a, b)
	closedLoop(t, s, a, 32, started, time.Millisecond, 1500*time.Millisecond)
	closeNow(t, s)
	p := &s.fill.pick
	t.Logf("rows/s: lock-step %.0f, split %.0f; chosen lock-step %v", p.rate(true), p.rate(false), p.best)
	if !p.best || p.rate(true) < 1.2*p.rate(false) {
		t.Errorf("lock-step chosen %v at %.0f rows/s against split's %.0f; want chosen, 20%% ahead", p.best, p.rate(true), p.rate(false))
	}
	all := append(a.batches(), b.batches()...)
	full := 0
	for _, x := range all {
		if x.rows == 32 {
			full++
		}
	}
	if full < len(all)/2 {
		t.Errorf("%d of %d batches held all 32 clients", full, len(all))
	}
}

// Batches of longBatch or more (a CPU's) are bound by their rows: the
// filler neither explores lock-step nor waits.
func TestFillerStaysSplitForLongBatches(t *testing.T) {
	eng := &fakeEngine{delay: func(rows int) time.Duration {
		return longBatch + time.Duration(rows)*100*time.Microsecond
	}}
	s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous, pick: testPick}, eng)
	closedLoop(t, s, eng, 8, nil, 0, 400*time.Millisecond)
	closeNow(t, s)
	if s.fill.waits != 0 || s.fill.pick.lock || s.fill.pick.left != 0 || s.fill.usual < longBatch {
		t.Errorf("%d-ms batches: %d waits, lock-step %v, exploring %d", s.fill.cost.Milliseconds(), s.fill.waits, s.fill.pick.lock, s.fill.pick.left)
	}
}

// A lone closed-loop client never waits: its own return is the only one
// the filler expects.
func TestContinuousLoneClientNeverWaits(t *testing.T) {
	eng := &fakeEngine{delay: func(int) time.Duration { return 500 * time.Microsecond }}
	s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous}, eng)
	closedLoop(t, s, eng, 1, nil, 0, 100*time.Millisecond)
	closeNow(t, s)
	if s.fill.waits != 0 || s.fill.tick < 20 {
		t.Errorf("%d batches, %d decisions to wait: want many and none", s.fill.tick, s.fill.waits)
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
// knows no cost to bound a wait by, and never waits, even under
// lock-step.
func TestFillerLeavesColdBatchesOut(t *testing.T) {
	eng := &coldEngine{fakeEngine: &fakeEngine{delay: func(rows int) time.Duration {
		return 2*time.Millisecond + time.Duration(rows)*10*time.Microsecond
	}}}
	s := startEngines(t, Config{Name: "tiny", Version: "1", MaxBatchSize: 32, Policy: PolicyContinuous, pick: testPick}, []engine.Engine{eng})
	closedLoop(t, s, eng.fakeEngine, 8, nil, 0, 100*time.Millisecond)
	closeNow(t, s)
	if s.fill.cost != 0 || s.fill.waits != 0 || s.fill.tick == 0 || s.fill.pick.measured != [2]float64{} || s.fill.pick.tops != [2]float64{} {
		t.Errorf("after %d cold batches: cost %v, %d waits, windows %v", s.fill.tick, s.fill.cost, s.fill.waits, s.fill.pick.tops)
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
