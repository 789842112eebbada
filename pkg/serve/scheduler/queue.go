package scheduler

import (
	"slices"
	"time"
)

// batch is what the owner hands an idle instance.
type batch struct {
	rows []row
	seq  uint64
	sent time.Time // when the owner handed it to an instance
}

// own is the owner goroutine: it alone touches pending, and it cuts a batch
// only when an instance is idle, so a batch always holds everything that
// arrived while the instances were busy (Triton's dynamic batcher; with
// max_queue_delay 0 this is text-embeddings-inference's continuous
// batching).
func (s *Scheduler) own() {
	defer close(s.work)
	var (
		pending []row
		idle    = len(s.engines)
		timer   = time.NewTimer(time.Hour)
		aborted bool
		fill    = &s.fill
	)
	fill.on, fill.log = s.cfg.Policy == PolicyContinuous && !s.cfg.NoWait, s.log
	fill.pick.params = s.cfg.pick
	timer.Stop()
	defer timer.Stop()
	for {
		now := time.Now()
		s.mu.Lock()
		fill.arrived(now, s.inbox)
		pending = append(pending, s.inbox...)
		clear(s.inbox)
		s.inbox = s.inbox[:0]
		closing := s.closed
		s.mu.Unlock()
		pending = s.dropAbandoned(pending)

		if aborted {
			for _, r := range pending {
				s.answer(r.req, Errorf(Unavailable, "model %s version %s was unloaded before the request ran", s.cfg.Name, s.cfg.Version))
			}
			s.dequeued(len(pending))
			return
		}
		var at time.Time // when to look again if a batch waits
		for idle > 0 && len(pending) > 0 {
			if !closing {
				var ok bool
				if ok, at = s.ready(pending, now, fill, len(s.engines)-idle); !ok {
					break
				}
			}
			var b *batch
			b, pending = s.cut(pending)
			b.sent = now
			s.dequeued(len(b.rows))
			s.work <- b // never blocks: an instance is idle and the buffer holds one per instance
			idle--
		}
		if closing && len(pending) == 0 {
			return
		}

		var wait <-chan time.Time
		if idle > 0 && len(pending) > 0 {
			timer.Reset(at.Sub(now))
			wait = timer.C
		}
		select {
		case <-s.notify:
		case fr := <-s.free:
			idle++
			fill.completed(time.Now(), fr, pending)
		case <-wait:
		case <-s.abortCh:
			aborted = true
		}
		if wait != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// dequeued returns n rows' worth of queue space.
func (s *Scheduler) dequeued(n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.queued -= n
	s.mu.Unlock()
}

// dropAbandoned removes rows whose request was given up (timed out,
// cancelled, failed elsewhere) so they are never computed.
func (s *Scheduler) dropAbandoned(pending []row) []row {
	kept := pending[:0]
	for _, r := range pending {
		if r.req.state.Load() == stateWaiting && r.req.ctx.Err() == nil {
			kept = append(kept, r)
		}
	}
	dropped := len(pending) - len(kept)
	clear(pending[len(kept):])
	s.dequeued(dropped)
	return kept
}

// ready says whether to cut a batch now rather than wait for more rows,
// and if not, when to look again; busy instances are running a batch.
func (s *Scheduler) ready(pending []row, now time.Time, fill *filler, busy int) (bool, time.Time) {
	if !s.cfg.Dynamic || (s.cfg.Policy == PolicyContinuous && !fill.on) {
		return true, time.Time{}
	}
	if s.cfg.MaxBatchSize > 0 && len(pending) >= s.cfg.MaxBatchSize {
		return true, time.Time{}
	}
	longest := 0
	for _, r := range pending {
		longest = max(longest, r.n)
	}
	if len(pending)*longest >= s.budget {
		return true, time.Time{}
	}
	if s.cfg.Policy == PolicyContinuous {
		room := s.budget / max(1, longest)
		if s.cfg.MaxBatchSize > 0 {
			room = min(room, s.cfg.MaxBatchSize)
		}
		w := fill.wait(now, len(pending), room, busy)
		return w <= 0, now.Add(w)
	}
	if now.Sub(pending[0].req.enqueued) >= s.cfg.MaxQueueDelay {
		return true, time.Time{}
	}
	if p := s.largestPreferred(len(pending)); p > 0 && p == s.maxPreferred() {
		return true, time.Time{}
	}
	return false, pending[0].req.enqueued.Add(s.cfg.MaxQueueDelay)
}

// largestPreferred is the largest preferred batch size ≤ n, or 0.
func (s *Scheduler) largestPreferred(n int) int {
	best := 0
	for _, p := range s.cfg.PreferredBatchSizes {
		if p <= n && p > best && (s.cfg.MaxBatchSize <= 0 || p <= s.cfg.MaxBatchSize) {
			best = p
		}
	}
	return best
}

func (s *Scheduler) maxPreferred() int {
	return s.largestPreferred(int(^uint(0) >> 1))
}

// cut takes one batch out of pending (oldest first, never empty) and
// returns it with the rows left, still in arrival order.
//
// Without dynamic batching the batch is the oldest request's rows alone.
// With it, the oldest row anchors the batch, so nothing starves, and the
// other rows are taken by closeness of length to the anchor, so that a
// padded engine pads little; the batch stops at max_batch_size rows (or the
// largest preferred batch size that can be formed) and the padded-token
// budget. Rows are then sorted by length.
func (s *Scheduler) cut(pending []row) (*batch, []row) {
	maxRows := s.cfg.MaxBatchSize
	if maxRows <= 0 {
		maxRows = len(pending)
	}
	if p := s.largestPreferred(len(pending)); p > 0 {
		maxRows = min(maxRows, p)
	}
	if s.cfg.Dynamic && len(pending) <= maxRows {
		longest := 0
		for _, r := range pending {
			longest = max(longest, r.n)
		}
		if len(pending)*longest <= s.budget {
			// Everything waiting fits: the common case under load.
			b := &batch{rows: slices.Clone(pending), seq: s.seq.Add(1)}
			clear(pending)
			slices.SortStableFunc(b.rows, func(x, y row) int { return x.n - y.n })
			return b, pending[:0]
		}
	}
	take := make([]bool, len(pending))
	take[0] = true
	rows, longest := 1, pending[0].n
	fits := func(r row) bool {
		return rows < maxRows && (rows+1)*max(longest, r.n) <= s.budget
	}
	add := func(i int) {
		take[i] = true
		rows++
		longest = max(longest, pending[i].n)
	}
	if !s.cfg.Dynamic {
		for i := 1; i < len(pending) && pending[i].req == pending[0].req && fits(pending[i]); i++ {
			add(i)
		}
	} else {
		order := make([]int, 0, len(pending)-1)
		for i := 1; i < len(pending); i++ {
			order = append(order, i)
		}
		anchor := pending[0].n
		slices.SortStableFunc(order, func(a, b int) int {
			return abs(pending[a].n-anchor) - abs(pending[b].n-anchor)
		})
		for _, i := range order {
			if rows >= maxRows {
				break
			}
			if fits(pending[i]) {
				add(i)
			}
		}
	}
	b := &batch{rows: make([]row, 0, rows), seq: s.seq.Add(1)}
	rest := pending[:0]
	for i, r := range pending {
		if take[i] {
			b.rows = append(b.rows, r)
		} else {
			rest = append(rest, r)
		}
	}
	clear(pending[len(rest):])
	slices.SortStableFunc(b.rows, func(x, y row) int { return x.n - y.n })
	return b, rest
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
