package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// The H200's measured batch times (docs/gpu.md): 1 row 0.40 ms, 16 rows
// 0.60 ms, 32 rows 0.68 ms, 64 rows 0.77 ms, 128 rows 1.20 ms, host share
// included.
func h200Filler() *filler {
	f := &filler{on: true}
	for _, c := range []struct {
		rows int
		ms   float64
	}{{1, 0.40}, {16, 0.60}, {32, 0.68}, {64, 0.77}, {128, 1.20}} {
		f.observe(c.rows, time.Duration(c.ms*float64(time.Millisecond)))
	}
	return f
}

func TestFillerCost(t *testing.T) {
	f := h200Filler()
	for _, c := range []struct {
		rows int
		ms   float64
	}{
		{1, 0.40}, {16, 0.60}, {24, 0.64}, {32, 0.68}, {48, 0.725}, {128, 1.20},
		{256, 1.20 + 128*(1.20-0.77)/64}, // beyond: the slope of the last two
	} {
		got, ok := f.cost(c.rows)
		if !ok || time.Duration(got).Round(time.Microsecond) != time.Duration(c.ms*1e6).Round(time.Microsecond) {
			t.Errorf("cost(%d) = %v, %v; want %.3f ms", c.rows, time.Duration(got), ok, c.ms)
		}
	}
	one := &filler{on: true}
	one.observe(16, time.Millisecond)
	if _, ok := one.cost(32); ok {
		t.Error("one size class measured: cost(32) claims to be known")
	}
	if got, ok := one.cost(16); !ok || got != float64(time.Millisecond) {
		t.Errorf("cost(16) of its own class = %v, %v", time.Duration(got), ok)
	}
}

// A batch's time drops to a new low at once and rises towards a higher one
// slowly, at most doubling its estimate per batch.
func TestFillerCostFollowsTheLowerEnvelope(t *testing.T) {
	f := &filler{on: true}
	f.observe(32, 50*time.Millisecond) // the first batch captured a graph
	for range 12 {
		f.observe(32, 600*time.Microsecond)
	}
	if got, _ := f.cost(32); time.Duration(got) > 620*time.Microsecond {
		t.Errorf("after 12 batches of 0.6 ms the estimate is %v", time.Duration(got))
	}
	f.observe(32, 100*time.Millisecond) // one preempted batch
	if got, _ := f.cost(32); time.Duration(got) > 800*time.Microsecond {
		t.Errorf("one slow batch took the estimate to %v", time.Duration(got))
	}
}

func TestFillerWait(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	for _, c := range []struct {
		name           string
		q, out, limit  int
		ret, since     time.Duration
		want           time.Duration
		forgetsClients bool
	}{
		// 16 queued, the 16 just answered come back in 0.3 ms: a batch of
		// 32 then costs 0.68 ms against two of 16 at 0.60, so wait up to
		// the break-even 0.52 ms (and no later than 4·0.3 after the
		// batch's end).
		{name: "c=32 halves merge", q: 16, out: 16, limit: 32, ret: ms(0.3), since: ms(0.05), want: ms(0.52)},
		{name: "c=32 lock-step, first back", q: 1, out: 31, limit: 32, ret: ms(0.3), since: ms(0.1), want: ms(1.2 - 0.1)},
		// The last row of 32 is worth 0.017 ms of idle GPU, less than a
		// straggler is expected to take.
		{name: "straggler not worth it", q: 31, out: 1, limit: 32, ret: ms(0.3), since: ms(0.25), want: 0},
		// 64 queued, 64 to come back in 0.7 ms: one batch of 128 saves
		// only 0.34 ms against two of 64, less than the wait.
		{name: "c=128 halves stay", q: 64, out: 64, limit: 128, ret: ms(0.7), since: 0, want: 0},
		{name: "lone client", q: 1, out: 0, limit: 32, ret: ms(0.3), since: ms(0.3), want: 0},
		{name: "full", q: 32, out: 16, limit: 32, ret: ms(0.3), since: 0, want: 0},
		{name: "no return seen yet", q: 16, out: 16, limit: 32, ret: 0, since: 0, want: 0},
		{name: "clients gone", q: 3, out: 16, limit: 32, ret: ms(0.3), since: ms(1.3), want: 0, forgetsClients: true},
		{name: "late, still worth it", q: 20, out: 12, limit: 32, ret: ms(0.3), since: ms(1.15), want: ms(0.05)},
		{name: "past 4·g", q: 20, out: 12, limit: 32, ret: ms(0.3), since: ms(1.2), want: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := h200Filler()
			now := time.Now()
			f.rows, f.ret, f.last = c.out, c.ret, now.Add(-c.since)
			got := f.wait(now, c.q, c.limit)
			if d := got - c.want; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("wait = %v, want %v", got, c.want)
			}
			if want := map[bool]int{false: c.out, true: 0}[c.forgetsClients]; f.out() != want {
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
// few.
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
	for _, x := range b[4:] {
		rows += x.rows
	}
	return float64(rows) / float64(len(b)-4)
}

// Under the continuous policy, 32 closed-loop clients on one instance
// whose batches cost a fixed time plus a little per row split into two
// alternating groups when nothing ever waits (the first client's batch
// runs alone, the rest queue behind it, and each group returns while the
// other runs); waiting for the answered clients merges them into full
// batches.
func TestContinuousWaitsForReturningClients(t *testing.T) {
	for _, c := range []struct {
		noFill   bool
		min, max float64
	}{{false, 26, 32}, {true, 1, 21}} {
		t.Run(fmt.Sprint("nofill=", c.noFill), func(t *testing.T) {
			started := make(chan struct{}, 1)
			eng := &fakeEngine{delay: func(rows int) time.Duration {
				select {
				case started <- struct{}{}:
				default:
				}
				return 10*time.Millisecond + time.Duration(rows)*100*time.Microsecond
			}}
			s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous, NoFill: c.noFill}, eng)
			mean := closedLoop(t, s, eng, 32, started, 2*time.Millisecond, 600*time.Millisecond)
			if mean < c.min || mean > c.max {
				t.Errorf("mean batch %.1f rows, want %.0f–%.0f", mean, c.min, c.max)
			}
		})
	}
}

// A lone closed-loop client never waits: its own return is the only one
// the filler expects.
func TestContinuousLoneClientNeverWaits(t *testing.T) {
	eng := &fakeEngine{delay: func(int) time.Duration { return 500 * time.Microsecond }}
	s := start(t, Config{MaxBatchSize: 32, Policy: PolicyContinuous}, eng)
	closedLoop(t, s, eng, 1, nil, 0, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s.fill.waits != 0 || s.fill.ret == 0 {
		t.Errorf("waits %d, return time %v: want no wait and a measured return", s.fill.waits, s.fill.ret)
	}
}
