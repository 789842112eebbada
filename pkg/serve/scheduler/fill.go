package scheduler

import (
	"math/bits"
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
// clients whose answers it has just sent, when that is cheaper than running
// without them.
//
// Closed-loop clients (a fixed number of callers, each sending its next
// request when the last is answered, as every benchmark and most pipelines
// do) split under a policy that never waits: with one instance and 32
// clients, the 16 that return while a batch runs form the next batch, and
// the two halves alternate for good. A GPU's small batches are
// latency-bound (m3e-base on an H200: 16 rows 0.51 ms, 32 rows 0.56 ms,
// docs/gpu.md), so halves give nearly half the throughput of full batches
// that wait the clients' round trip. The filler decides from measurements,
// not from a knob: with q rows queued and m rows of the latest batch not
// yet back (its rows less the rows queued since it ended),
//
//	waiting is worth it  ⇔  g' < cost(q)·(q+m)/q − cost(q+m)
//
// where cost(n) is the instance's measured time for a batch of n rows
// (sizeClass, interpolated between), g the measured time the answered rows
// take to come back (from a batch's end to 90% of its rows' worth of
// arrivals) and g' what is left of it (at least g/8, for the stragglers).
// The right side is the idle time that leaves the cost per row no higher
// than running q now. An instance waits at most that long, and no later
// than 4·g after the batch's end, then runs whatever came. A lone client is
// never delayed (its own return ends the wait: m = 0), and at c=128 on the
// H200 the returns take longer than the break-even, so the halves that
// keep the GPU busy stay.
//
// The owner goroutine alone uses a filler.
type filler struct {
	on bool
	// classes holds the batch-cost estimates by size (sizeClass).
	classes [exactSizes + 20]costClass
	// The latest batch: its rows, its end, and the rows queued since.
	rows     int
	last     time.Time
	arrivals int
	timed    bool          // its return time is measured
	ret      time.Duration // smoothed return time; 0 until measured
	waits    int           // decisions to wait, for tests
}

// completed records a batch's end; pending is what the owner holds, which
// may already include returns from it.
func (f *filler) completed(now time.Time, fr freed, pending []row) {
	if !f.on || fr.rows <= 0 {
		return
	}
	f.observe(fr.rows, fr.busy)
	f.rows, f.last, f.arrivals, f.timed = fr.rows, fr.end, 0, false
	f.arrived(now, pending)
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
	if !f.timed && f.arrivals >= max(1, f.rows*9/10) {
		f.timed = true
		g := now.Sub(f.last)
		if f.ret == 0 {
			f.ret = g
		} else {
			f.ret += (g - f.ret) / 4
		}
	}
}

// out is the rows of the latest batch not yet back.
func (f *filler) out() int { return max(0, f.rows-f.arrivals) }

// exactSizes is how many batch sizes have a cost estimate of their own;
// larger ones share one per power of two. Small batches are where waiting
// pays, and a class that mixed 16 and 31 rows would follow the cost of
// its smaller batches (the lower envelope) at the mean size of all.
const exactSizes = 64

func sizeClass(rows int) int {
	if rows <= exactSizes {
		return rows - 1
	}
	return min(exactSizes+bits.Len(uint(rows))-bits.Len(exactSizes+1), exactSizes+19)
}

// costClass is one size class's smoothed rows and time.
type costClass struct {
	n    int
	rows float64
	ns   float64
}

// observe folds one batch's time into its size class. Down fast, up
// slowly: a batch's time is its cost plus noise (a graph captured, a GEMM
// timed, a preempted thread), so the estimate follows the lower envelope.
func (f *filler) observe(rows int, busy time.Duration) {
	c := &f.classes[sizeClass(rows)]
	ns := float64(busy)
	if c.n == 0 {
		c.rows, c.ns = float64(rows), ns
	} else {
		a := 1.0 / 8
		if ns < c.ns {
			a = 1.0 / 2
		}
		c.rows += (float64(rows) - c.rows) / 8
		c.ns += (min(ns, 2*c.ns) - c.ns) * a
	}
	c.n++
}

// cost estimates a batch of n rows from the classes measured, linearly
// between the nearest on either side or beyond the two nearest; ok is
// false when fewer than that are known.
func (f *filler) cost(n int) (ns float64, ok bool) {
	x := float64(n)
	var lo, hi, lo2, hi2 *costClass
	for i := range f.classes {
		c := &f.classes[i]
		if c.n == 0 {
			continue
		}
		if c.rows <= x {
			lo, lo2 = c, lo
		} else if hi == nil {
			hi = c
		} else if hi2 == nil {
			hi2 = c
		}
	}
	switch {
	case lo != nil && hi != nil:
	case lo != nil && lo2 != nil:
		lo, hi = lo2, lo
	case hi != nil && hi2 != nil:
	case lo != nil && lo.rows == x:
		return lo.ns, true
	default:
		return 0, false
	}
	if hi.rows == lo.rows {
		return lo.ns, true
	}
	slope := max(0, (hi.ns-lo.ns)/(hi.rows-lo.rows))
	return max(0, lo.ns+(x-lo.rows)*slope), true
}

// wait says how long past now an idle instance holding q queued rows
// (capped at limit, the most one batch takes) should wait for returning
// rows; 0 means run now. Nothing waits before a return has been seen.
func (f *filler) wait(now time.Time, q, limit int) time.Duration {
	m := min(f.out(), limit-q)
	if !f.on || m <= 0 || f.ret <= 0 {
		return 0
	}
	since := now.Sub(f.last)
	if since > 4*f.ret {
		f.rows = 0 // nobody came back in time: those clients are gone
		return 0
	}
	c, ok := f.cost(q)
	if !ok {
		return 0
	}
	// The fuller size never ran: waiting up to one batch's time once
	// measures it.
	breakEven := time.Duration(c)
	if full, ok := f.cost(q + m); ok {
		breakEven = time.Duration(c*float64(q+m)/float64(q) - full)
	}
	// What is still to come: the rest of the usual return time, or for
	// the stragglers after it an eighth of it.
	if expect := max(f.ret-since, f.ret/8); expect >= breakEven {
		return 0
	}
	w := max(0, min(breakEven, 4*f.ret-since))
	if w > 0 {
		f.waits++
	}
	return w
}
