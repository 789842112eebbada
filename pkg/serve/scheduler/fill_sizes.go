package scheduler

import (
	"math/bits"
	"time"
)

// exactSizes is how many batch sizes have an estimate of their own; larger
// ones share one per power of two. Small batches are where waiting pays,
// and a class that mixed 16 and 31 rows would follow the cost of its
// smaller batches (the lower envelope) at the mean size of all.
const exactSizes = 64

func sizeClass(rows int) int {
	if rows <= exactSizes {
		return max(rows, 1) - 1
	}
	return min(exactSizes+bits.Len(uint(rows))-bits.Len(exactSizes+1), exactSizes+19)
}

// sizeTable is a smoothed time per batch size class.
type sizeTable [exactSizes + 20]sizeClassEst

// sizeClassEst is one size class's smoothed rows and time.
type sizeClassEst struct {
	n    int
	rows float64
	ns   float64
	tick uint64 // the batch count when it was last observed
}

// trust says which classes an estimate may use: those observed at least
// min times, the latest at batch count since or later. A batch size not run
// for a while (its estimate may date from the first batches, which capture
// graphs and time GEMMs) is measured again rather than believed.
type trust struct {
	min   int
	since uint64
}

func (w trust) ok(c *sizeClassEst) bool { return c.n >= w.min && c.tick >= w.since }

// observe folds one batch's time into its size class. With envelope, down
// fast and up slowly: a batch's run time is its cost plus noise (a graph
// captured, a GEMM timed, a preempted thread), so the estimate follows the
// lower envelope; without, a plain moving average (a return time's spread
// is what it is).
func (t *sizeTable) observe(rows int, d time.Duration, envelope bool, tick uint64) {
	c := &t[sizeClass(rows)]
	c.tick = tick
	ns := float64(d)
	if c.n == 0 {
		c.rows, c.ns = float64(rows), ns
	} else {
		a := 1.0 / 4
		if envelope {
			a = 1.0 / 8
			if ns < c.ns {
				a = 1.0 / 2
			}
			ns = min(ns, 2*c.ns)
		}
		c.rows += (float64(rows) - c.rows) / 8
		c.ns += (ns - c.ns) * a
	}
	c.n++
}

// near is at, or when that knows too little, the nearest trusted class's
// estimate: a round trip changes slowly with the batch's size, and the
// batch that measured it need not have had exactly the size asked about.
func (t *sizeTable) near(n int, w trust) (time.Duration, bool) {
	if d, ok := t.at(n, w); ok {
		return d, true
	}
	best, found := 0, false
	var d time.Duration
	for i := range t {
		c := &t[i]
		if !w.ok(c) {
			continue
		}
		if dist := abs(int(c.rows+0.5) - n); !found || dist < best {
			best, found, d = dist, true, time.Duration(c.ns)
		}
	}
	return d, found
}

// at estimates n rows from the classes measured, linearly between the
// nearest on either side or beyond the two nearest; ok is false when fewer
// than that are trusted.
func (t *sizeTable) at(n int, w trust) (time.Duration, bool) {
	x := float64(n)
	var lo, hi, lo2, hi2 *sizeClassEst
	for i := range t {
		c := &t[i]
		if !w.ok(c) {
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
		lo, hi = hi, hi2
	case lo != nil && lo.rows == x:
		return time.Duration(lo.ns), true
	default:
		return 0, false
	}
	if hi.rows == lo.rows {
		return time.Duration(lo.ns), true
	}
	slope := max(0, (hi.ns-lo.ns)/(hi.rows-lo.rows))
	return time.Duration(max(0, lo.ns+(x-lo.rows)*slope)), true
}
