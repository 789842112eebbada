package bench

import (
	"context"
	"errors"
	"sync"
	"time"
)

// manualClock is a Clock that moves only when a fake client advances it, so
// a single worker's timeline is exact. Sleep does not advance it: the
// workers drive time.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *manualClock) Sleep(ctx context.Context, d time.Duration) error {
	time.Sleep(50 * time.Microsecond)
	return ctx.Err()
}

// scriptedClient takes latencies[n] of clock time for its n-th call
// (cycling) and fails the calls whose index is in fail.
type scriptedClient struct {
	clock     *manualClock
	latencies []time.Duration
	fail      map[int]error
	mu        sync.Mutex
	n         int
}

func (s *scriptedClient) Do(ctx context.Context, i int) error {
	s.mu.Lock()
	n := s.n
	s.n++
	s.mu.Unlock()
	s.clock.Advance(s.latencies[n%len(s.latencies)])
	if err := s.fail[n]; err != nil {
		return err
	}
	return nil
}

func (s *scriptedClient) Close() error { return nil }

var errScripted503 = &StatusError{Kind: "http_503"}
var errScriptedConn = errors.New("scripted connection failure")
