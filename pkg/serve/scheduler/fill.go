package scheduler

import (
	"time"
)

// freed is what an instance tells the owner when it is idle again: how
// many rows its batch answered, when the engine finished (before the
// answers went out, so every row queued since can be a return) and how
// long the batch held the engine (rows 0: not known, as for a pipelined
// instance, whose token comes back before its batch ends).
type freed struct {
	rows int
	end  time.Time
	busy time.Duration
}

// filler is the continuous policy's one exception to "an idle instance
// takes whatever is queued at once": it lets an idle instance wait for the
// clients whose answers it has just sent, when that serves more rows per
// second than running without them.
//
// Closed-loop clients (a fixed number of callers, each sending its next
// request when the last is answered, as every benchmark and most pipelines
// do) settle into one of two cycles. Split: the N clients form two groups,
// each returning while the other's batch runs, so the GPU never idles but
// runs N/2 rows at a time, N/2 rows per cost(N/2). Lock-step: one batch of
// all N, then the GPU idles for the time g(N) the N answers take to go out
// and the N next requests to come in, N rows per cost(N) + g(N). A policy
// that never waits stays split for good. Lock-step serves more exactly when
//
//	g(N) < 2·cost(N/2) − cost(N)
//
// which holds where small batches are latency-bound and the round trip is
// short: m3e-base on an H200 at c=32 (16 rows 0.60 ms, 32 rows 0.68 ms,
// g(32) ≈ 0.3 ms), but not at c=128 (64 rows 0.8 ms, 128 rows 1.2 ms, g(128)
// ≈ 1.1 ms: lock-step measured 55k infer/s there against 64k split). The
// filler decides from its own measurements, not from a knob: cost by batch
// size (the instance's time per batch, sizeTable) and g by batch size (the
// idle time from a batch's end to the next batch's dispatch, which is what
// lock-step costs: the answers, the clients, the requests and the wait for
// the stragglers). N is the rows queued plus the rows of the latest batch
// not yet back. When g(N) was never measured, one cycle waits to measure
// it; every refreshAfter batches the idle times are forgotten and measured
// again, since they move with the load.
//
// Once lock-step is chosen, an instance with q rows queued and m to come
// still runs without the last stragglers when they are not worth their
// wait: when what is left of g (at least g/8) exceeds cost(q)·(q+m)/q −
// cost(q+m), the idle time that keeps the cost per row no higher than
// running q now. It never waits past 4·g after the batch's end. A lone
// client is never delayed (its own return ends the wait: m = 0).
//
// The owner goroutine alone uses a filler.
type filler struct {
	on    bool
	costs sizeTable // an instance's time per batch
	gaps  sizeTable // the idle time before a batch, per batch size
	// The latest batch: its rows, its end, and the rows queued since.
	rows     int
	last     time.Time
	arrivals int
	batches  int // since the idle times were last forgotten
	waits    int // decisions to wait, for tests
}

// refreshAfter is how many batches an idle time is trusted for.
const refreshAfter = 512

// completed records a batch's end; pending is what the owner holds, which
// may already include returns from it.
func (f *filler) completed(now time.Time, fr freed, pending []row) {
	if !f.on || fr.rows <= 0 {
		return
	}
	f.costs.observe(fr.rows, fr.busy, true)
	if f.batches++; f.batches >= refreshAfter {
		f.batches = 0
		f.gaps.forget()
	}
	f.rows, f.last, f.arrivals = fr.rows, fr.end, 0
	f.arrived(now, pending)
}

// dispatched records a batch of rows handed to an instance: the idle time
// since the latest batch's end is what this size of batch waited.
// An idle time past twice the batch's cost (a quiet spell, not a round
// trip) counts as twice the cost: lock-step never pays there, and one quiet
// spell should not outweigh the round trips before it.
func (f *filler) dispatched(now time.Time, rows int) {
	if !f.on || f.last.IsZero() {
		return
	}
	gap := now.Sub(f.last)
	if c, ok := f.costs.at(rows); ok {
		gap = min(gap, 2*c)
	}
	f.gaps.observe(rows, gap, false)
}

// arrived records rows taken from the inbox (or held when a batch ended);
// those queued after the latest batch's end count as its returns.
func (f *filler) arrived(now time.Time, rows []row) {
	if !f.on || f.last.IsZero() {
		return
	}
	for _, r := range rows {
		if !r.req.enqueued.Before(f.last) {
			f.arrivals++
		}
	}
}

// out is the rows of the latest batch not yet back.
func (f *filler) out() int { return max(0, f.rows-f.arrivals) }

// wait says how long past now an idle instance holding q queued rows
// (capped at limit, the most one batch takes) should wait for returning
// rows; 0 means run now.
func (f *filler) wait(now time.Time, q, limit int) time.Duration {
	m := min(f.out(), limit-q)
	if !f.on || m <= 0 || q <= 0 {
		return 0
	}
	n, since := q+m, now.Sub(f.last)
	cq, ok := f.costs.at(q)
	if !ok {
		return 0
	}
	cn, okn := f.costs.at(n)
	breakEven := cq // the fuller size never ran: one batch's time measures it
	if okn {
		breakEven = time.Duration(float64(cq)*float64(n)/float64(q)) - cn
	}
	g, measured := f.gaps.own(n)
	if !measured {
		// One cycle in lock-step measures g(n).
		return f.waiting(max(0, min(breakEven, max(cq, cn)-since)))
	}
	if since > 4*g {
		f.rows = 0 // nobody came back in time: those clients are gone
		return 0
	}
	if ch, ok := f.costs.at(max(1, n/2)); okn && ok && g >= 2*ch-cn {
		return 0 // split serves more
	}
	if expect := max(g-since, g/8); expect >= breakEven {
		return 0 // the stragglers are not worth their wait
	}
	return f.waiting(max(0, min(breakEven, 4*g-since)))
}

func (f *filler) waiting(w time.Duration) time.Duration {
	if w > 0 {
		f.waits++
	}
	return w
}
