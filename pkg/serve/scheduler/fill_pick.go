package scheduler

import "time"

// picker chooses the continuous policy's cycle (filler) by measuring both:
// an exploration runs windows of each in turn, split and lock-step
// alternating, and keeps lock-step only when its best window's rows per
// second beat split's by more than margin (the best, not the mean: what
// disturbs a window, a client pausing, a collection, a preempted thread,
// only ever lowers its rate); then the choice holds for hold
// before the next exploration, since the load, and with it the winner,
// moves. Split wins ties: it never adds a wait to anyone's latency.
//
// A window counts the rows of the batches that end inside it, from a
// batch's end to a batch's end as the owner hears them, after the first
// few batches of a change of cycle have passed (the clients regroup). A
// cold batch (a graph captured, GEMMs timed) starts the window again, and
// so does a pause (a gap between batch ends of over stale and eight times
// the usual; a rate that spans it says nothing of either cycle); after the
// third pause the traffic is light, where throughput is not what is short,
// and the exploration ends on split.
//
// What it costs: under a steady load one exploration of four windows every
// hold to 8·hold, half of them in the losing cycle: about a percent of
// the loser's deficit.
type picker struct {
	lock bool // the cycle in force
	best bool // the latest exploration's choice
	// windows left in this exploration; 0: holding best until until
	left   int
	until  time.Time
	settle int // batches to let pass before the window counts
	pauses int // windows of this exploration started again after a pause
	began  time.Time
	streak int           // how many times hold the choice holds
	last   time.Time     // the latest batch end
	gap    time.Duration // the usual gap between batch ends (smoothed)
	start  time.Time
	rows   int
	n      int        // batches in the window
	tops   [2]float64 // the best window's rows per second per cycle, this exploration
	// the latest finished exploration's best rows per second, split and
	// lock-step (0: not measured)
	measured [2]float64
	params   pickParams
}

// pickParams are the picker's windows; tests shrink them.
type pickParams struct {
	window, stale, hold time.Duration
	batches, settle     int
	margin              float64
}

var defaultPick = pickParams{
	window:  20 * time.Millisecond,
	stale:   50 * time.Millisecond, // the shortest pause
	hold:    time.Second,
	batches: 8,
	settle:  3,
	margin:  0.02,
}

func idx(lock bool) int {
	if lock {
		return 1
	}
	return 0
}

// top is this exploration's best window's rows per second under a cycle
// so far (0: none yet).
func (p *picker) top(lock bool) float64 { return p.tops[idx(lock)] }

// rate is the latest finished exploration's best rows per second under a
// cycle; 0 if it was not measured.
func (p *picker) rate(lock bool) float64 { return p.measured[idx(lock)] }

// batch records the end of a batch of rows as the owner hears it, at now;
// it reports whether an exploration ended with it.
func (p *picker) batch(now time.Time, rows int, cold bool) bool {
	if p.params == (pickParams{}) {
		p.params = defaultPick
	}
	// A pause: a gap between batch ends far beyond the usual (a client
	// restarting, traffic ebbing). The usual gap follows the batches' own
	// time, so ONNX Runtime's 100 ms batches are not pauses.
	// A pause moves the usual gap too, by at most its eighth's worth of
	// eight times it, so that batches that have become slower for good stop
	// being pauses after a few.
	gap, paused := now.Sub(p.last), false
	switch {
	case p.last.IsZero():
	case p.gap == 0:
		p.gap = gap
	default:
		paused = gap > max(p.params.stale, 8*p.gap)
		p.gap += (min(gap, 8*p.gap) - p.gap) / 8
	}
	p.last = now
	if p.left == 0 {
		if now.Before(p.until) {
			return false
		}
		p.left, p.tops, p.pauses, p.began = 4, [2]float64{}, 0, now
		p.begin()
		return false
	}
	if cold {
		p.settle = max(p.settle, 1)
	}
	if paused {
		// The window says nothing of either cycle: measured again, unless
		// the traffic stays this light.
		if p.pauses++; p.pauses > 2 {
			p.end(now, false, true)
			return true
		}
		p.settle = max(p.settle, 1)
	}
	if p.settle > 0 {
		p.settle--
		p.start, p.rows, p.n = now, 0, 0
		return false
	}
	p.rows += rows
	p.n++
	d := now.Sub(p.start)
	if d < p.params.window || p.n < p.params.batches {
		return false
	}
	i := idx(p.lock)
	p.tops[i] = max(p.tops[i], float64(p.rows)/d.Seconds())
	if p.left--; p.left > 0 {
		p.begin()
		return false
	}
	p.end(now, p.top(true) > p.top(false)*(1+p.params.margin), false)
	return true
}

// begin starts the next window: the cycle not in force at the start of the
// exploration first, so that both are measured twice, interleaved.
func (p *picker) begin() {
	p.lock = p.best != (p.left%2 == 0)
	p.settle = p.params.settle
}

// end settles an exploration on lock (or not) and says how long the choice
// holds: hold, doubled for each exploration in a row that chose the same
// cycle by a clear lead (up to 8 times, so that a steady load spends
// ever less of its time in the losing cycle), and never less than eight
// times what the exploration took (where batches take 100 ms, as on a
// CPU, an exploration takes seconds). An exploration ended by pauses
// (light) holds one hold: its length is the pauses', and the traffic may
// be back at full rate the moment after (a fresh server's first clients,
// waiting out its first graph captures).
func (p *picker) end(now time.Time, lock, light bool) {
	win, lose := p.top(lock), p.top(!lock)
	if lock == p.best && lose > 0 && win > lose*(1+4*p.params.margin) {
		p.streak = min(max(1, 2*p.streak), 8)
	} else {
		p.streak = 1
	}
	p.best, p.lock, p.left, p.settle = lock, lock, 0, 0
	p.measured = p.tops
	hold := max(time.Duration(p.streak)*p.params.hold, 8*now.Sub(p.began))
	if light {
		p.streak, hold = 0, p.params.hold
	}
	p.until = now.Add(hold)
}

// halt leaves the cycle split and any exploration unfinished, to start
// afresh with the next batch that batch records.
func (p *picker) halt() {
	p.lock, p.best, p.left, p.settle, p.streak = false, false, 0, 0, 0
	p.until = time.Time{}
}
