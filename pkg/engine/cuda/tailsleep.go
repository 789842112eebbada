package cuda

import (
	"sync"
	"time"
)

// Polling the end of a batch costs a core for as long as the tail runs:
// at c=128 on the H200 about 150 µs of every ~1 ms batch, the largest
// share of the engine's host CPU (docs/gpu.md, "Fifth round"). A batch of
// one shape takes the same time batch after batch, so waitTail learns, per
// bucket, how long after the nearly-done wake-up the end comes, sleeps
// through most of it and polls only the last tailMargin.

// tailMargin is how long before the expected end the sleep stops: it
// covers the sleep's own lateness (tens of µs with the kernel's default
// timer slack, a few with tailSlackNs) and a batch a little faster than
// the ones before it.
const tailMargin = 30 * time.Microsecond

// tailSlackNs is the timer slack the waiting thread sleeps with: Linux
// lets a normal thread's sleep run 50 µs late by default (prctl(2),
// PR_SET_TIMERSLACK), a fifth of a small batch's tail.
const tailSlackNs = 2000

// tailTimes holds, per bucket, the learned time from the nearly-done
// wake-up to the batch's end. One goroutine awaits an engine's batches;
// the lock only keeps a stray concurrent Await correct.
type tailTimes struct {
	mu sync.Mutex
	m  map[bucket]time.Duration
}

// sleepFor is how long to sleep before polling a batch of bucket bk: zero
// until a batch of it has been seen, or when its tail is too short to
// sleep through.
func (t *tailTimes) sleepFor(bk bucket) time.Duration {
	t.mu.Lock()
	d := t.m[bk]
	t.mu.Unlock()
	if d <= 2*tailMargin {
		return 0
	}
	return d - tailMargin
}

// observe records one batch: took is the time from the wake-up to the end
// seen, and early reports that the end was already there at the first
// poll after a sleep (so the batch may have ended sooner than took says).
// A late sighting shortens the estimate fast, an on-time one moves it a
// quarter of the way, so the sleep never stays longer than the tail.
func (t *tailTimes) observe(bk bucket, took time.Duration, early bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[bucket]time.Duration{}
	}
	d, ok := t.m[bk]
	switch {
	case !ok:
		d = took
	case early:
		d -= d / 8
	default:
		d += (took - d) / 4
	}
	t.m[bk] = d
}
