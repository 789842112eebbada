package scheduler

import (
	"log/slog"
	"time"
)

// freed is what an instance tells the owner when it is idle again: how
// many rows its batch answered, when the owner sent the batch, and when
// the engine finished (before the answers went out, so every row queued
// since can be a return); rows 0: not known, as for a pipelined instance,
// whose token comes back before its batch ends.
type freed struct {
	rows int
	sent time.Time
	end  time.Time
	cold bool // the engine compiled, timed or captured for it (engine.ColdCounter)
}

// filler is the continuous policy's one exception to "an idle instance
// takes whatever is queued at once": it lets an idle instance wait for the
// clients whose answers it has just sent, when that serves more rows per
// second than running without them. It is experimental and off unless
// Config.Fill: on the H200 its choice was right at c=128 but not stable at
// c=32, where the two cycles' figures sit at the break-even (docs/gpu.md,
// "Sixth round").
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
// size (all the instance spends on a batch, from the owner's send to the
// owner hearing it is free, sizeTable) and g by batch size (the idle time
// from an instance's free to its next batch after a wait, which is what
// lock-step costs: the clients, their requests and the wait for the
// stragglers; measured only in lock-step cycles that follow one, since
// the first wait after split cycles waits for half the clients only). N is
// the rows queued plus the rows of the latest batches not yet back (both
// groups', under split cycles).
// Estimates are trusted for a while only (trust): when g(N) is not known,
// two cycles wait to measure it; when the cost of half a
// batch is not, the instance runs without waiting until it is; since
// round trips move with the load, g is measured again every gapFresh
// batches, and a batch size's cost every costFresh.
//
// Once lock-step is chosen, an instance with q rows queued and m to come
// still runs without the last stragglers when they are not worth their
// wait: when what is left of g (at least g/8) exceeds cost(q)·(q+m)/q −
// cost(q+m), the idle time that keeps the cost per row no higher than
// running q now. It never waits past 4·g after the instance was freed. A lone
// client is never delayed (its own return ends the wait: m = 0).
//
// The owner goroutine alone uses a filler.
type filler struct {
	on    bool
	costs sizeTable // an instance's time per batch
	gaps  sizeTable // the idle time before a batch, per batch size
	// The latest batches whose rows are not all back, oldest first, and
	// when the owner heard of the latest's end (the idle time's start).
	sent   []answered
	idle   time.Time
	tick   uint64 // batches completed
	waits  int    // decisions to wait, for tests
	waited bool   // the batch being formed waited
	// prevWaited: the batch before it did too
	prevWaited bool
	lock       bool // the latest choice was lock-step, for the log
	log        *slog.Logger
}

// How many batches an estimate is trusted for, and how often a size must
// have run (its first batch may have captured a graph or timed GEMMs).
const (
	gapFresh   = 512
	costFresh  = 256
	costTrials = 2
)

func (f *filler) costTrust() trust {
	return trust{min: costTrials, since: f.tick - min(f.tick, costFresh)}
}

func (f *filler) gapTrust() trust {
	return trust{min: 1, since: f.tick - min(f.tick, gapFresh)}
}

// completed records a batch's end; pending is what the owner holds, which
// may already include returns from it.
func (f *filler) completed(now time.Time, fr freed, pending []row) {
	if !f.on || fr.rows <= 0 {
		return
	}
	f.tick++
	if !fr.cold {
		// A batch's cost is all the instance spends on it, from the owner's
		// send to the owner hearing it is free: staging, the engine, the
		// answers and the hand-offs. Split cycles pay each of these twice
		// per N rows, lock-step ones once.
		f.costs.observe(fr.rows, now.Sub(fr.sent), true, f.tick)
	}
	if len(f.sent) == cap(f.sent) && len(f.sent) > 0 {
		f.sent = append(f.sent[:0], f.sent[1:]...) // the oldest's clients are gone
	}
	if f.sent == nil {
		f.sent = make([]answered, 0, 4)
	}
	f.sent = append(f.sent, answered{rows: fr.rows, end: fr.end})
	f.idle = now
	f.arrived(now, pending)
}

// dispatched records a batch of rows handed to an instance. After two
// waits in a row (a lock-step cycle after a lock-step cycle) the idle time
// since the instance was freed is what lock-step costs at this size: all
// the rows of the batch before had to come back. The first wait after
// split cycles waited only for half the clients, and a batch that did not
// wait was cut from rows that queued while another ran; neither says what
// lock-step costs. An idle time past twice the batch's cost (a quiet
// spell, not a round trip) counts as twice the cost: lock-step never pays
// there, and one quiet spell should not outweigh the round trips before it.
func (f *filler) dispatched(now time.Time, rows int) {
	steady := f.waited && f.prevWaited
	f.prevWaited, f.waited = f.waited, false
	if !f.on || f.idle.IsZero() || !steady {
		return
	}
	gap := now.Sub(f.idle)
	if c, ok := f.costs.at(rows, f.costTrust()); ok {
		gap = min(gap, 2*c)
	}
	f.gaps.observe(rows, gap, false, f.tick)
}

// answered is a batch whose rows went back to their clients: how many, when
// the engine ended it, and how many rows have been queued since that can
// be its clients' next requests.
type answered struct {
	rows, back int
	end        time.Time
}

// arrived records rows taken from the inbox, and when a batch ends the
// rows held: a row queued after a batch's end is taken as the return of
// one of its rows, the oldest batch's first, so that under split cycles the
// group still on its way back from the batch before the latest is counted
// too. A row so taken is marked, so that it is counted once; one that
// matched no batch (queued after an end the owner had not heard of yet) is
// taken when that batch's end is recorded.
func (f *filler) arrived(now time.Time, rows []row) {
	if !f.on || len(f.sent) == 0 {
		return
	}
	for j := range rows {
		r := &rows[j]
		if r.back {
			continue
		}
		for i := range f.sent {
			a := &f.sent[i]
			if a.back < a.rows && !r.req.enqueued.Before(a.end) {
				a.back++
				r.back = true
				break
			}
		}
	}
	kept := f.sent[:0]
	for _, a := range f.sent {
		if a.back < a.rows {
			kept = append(kept, a)
		}
	}
	f.sent = kept
}

// out is the rows answered whose senders have not sent again: the closed
// loop's clients that are on their way back.
func (f *filler) out() int {
	n := 0
	for _, a := range f.sent {
		n += a.rows - a.back
	}
	return n
}

// wait says how long past now an idle instance holding q queued rows
// (capped at limit, the most one batch takes) should wait for returning
// rows; 0 means run now.
func (f *filler) wait(now time.Time, q, limit int) time.Duration {
	m := min(f.out(), limit-q)
	if !f.on || m <= 0 || q <= 0 {
		return 0
	}
	ct := f.costTrust()
	n, since := q+m, now.Sub(f.idle)
	cq, ok := f.costs.at(q, ct)
	if !ok {
		return 0
	}
	cn, okn := f.costs.at(n, ct)
	breakEven := cq // the fuller size never ran: one batch's time measures it
	if okn {
		breakEven = time.Duration(float64(cq)*float64(n)/float64(q)) - cn
	}
	g, measured := f.gaps.near(n, f.gapTrust())
	if !measured {
		// Two cycles in lock-step measure g(n).
		return f.waiting(max(0, min(breakEven, max(cq, cn)-since)))
	}
	if since > 4*g {
		f.sent = f.sent[:0] // nobody came back in time: those clients are gone
		return 0
	}
	ch, okh := f.costs.at(max(1, n/2), ct)
	if !okn || !okh {
		return 0 // the split's cost is to be measured
	}
	if lock := g < 2*ch-cn; lock != f.lock {
		f.lock = lock
		if f.log != nil {
			f.log.Debug("continuous batching: cycle chosen", "lock_step", lock, "rows", n,
				"idle_before_full_batch", g, "full_batch", cn, "half_batch", ch)
		}
	}
	if !f.lock {
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
		f.waited = true
	}
	return w
}
