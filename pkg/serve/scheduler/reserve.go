package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// A reservation holds queue space for a request that arrives in several
// pieces (an OpenAI request of hundreds of texts runs as max_batch_size
// pieces): the whole request is admitted or none of it, so that one large
// request cannot take part of the queue and then fail, pushing other
// clients' small requests into Overloaded on the way (and counting a
// failure per piece).

// Reservation is queue space taken for rows that Infer calls carrying it
// (WithReservation) will bring.
type Reservation struct {
	s    *Scheduler
	mu   sync.Mutex
	left int
}

type reservationKey struct{}

// WithReservation makes the Infer calls under ctx draw on r.
func WithReservation(ctx context.Context, r *Reservation) context.Context {
	return context.WithValue(ctx, reservationKey{}, r)
}

// Reserve takes queue space for n texts at once, or answers as admit
// does: InvalidInput when n can never fit, Overloaded (counted as one
// failure) when the queue has no room now, Unavailable when closing.
func (s *Scheduler) Reserve(n int) (*Reservation, error) {
	arrived := time.Now()
	fail := func(err error) (*Reservation, error) {
		s.stats.failed(arrived)
		s.cfg.Metrics.Failed(failureReason(nil, err), time.Since(arrived))
		return nil, err
	}
	if n > s.cfg.MaxQueueRows {
		return fail(Errorf(InvalidInput, "the request has %d texts but model %s's queue holds at most %d (max_queue_size); split it into requests of at most %d texts", n, s.cfg.Name, s.cfg.MaxQueueRows, s.cfg.MaxQueueRows))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fail(Errorf(Unavailable, "model %s version %s is unloading", s.cfg.Name, s.cfg.Version))
	}
	if s.queued+n > s.cfg.MaxQueueRows {
		queued := s.queued
		s.mu.Unlock()
		return fail(&Error{Kind: Overloaded, RetryAfter: s.retryAfter(queued),
			Msg: fmt.Sprintf("model %s is overloaded: %d texts queued, the limit is %d; this request of %d texts needs room for all of them", s.cfg.Name, queued, s.cfg.MaxQueueRows, n)})
	}
	s.queued += n
	s.mu.Unlock()
	return &Reservation{s: s, left: n}, nil
}

// take draws n rows from the reservation of ctx, if it has one with room.
func takeReserved(ctx context.Context, s *Scheduler, n int) bool {
	r, ok := ctx.Value(reservationKey{}).(*Reservation)
	if !ok || r.s != s {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left < n {
		return false
	}
	r.left -= n
	return true
}

// Release gives back the space no Infer call has drawn (a piece that
// failed before it was admitted, or the whole when the request is given up).
func (r *Reservation) Release() {
	if r == nil {
		return
	}
	r.mu.Lock()
	n := r.left
	r.left = 0
	r.mu.Unlock()
	if n > 0 {
		r.s.dequeued(n)
		r.s.signal()
	}
}
