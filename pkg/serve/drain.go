package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// Shutdown in three phases, so that a load balancer can take the server out
// of rotation without a single accepted request going unanswered:
//
//  1. SIGTERM: readiness turns not-ready at once (503) while the listeners
//     stay open and every request, new ones included, is still served for
//     ShutdownDelay, the time a load balancer's health check needs to notice.
//  2. New API requests are answered 503 + Retry-After ("shutting down"),
//     never refused, while the accepted ones finish, up to DrainTimeout.
//  3. When the deadline passes first, every request still pending is
//     answered 503 / UNAVAILABLE through its context (cause errDrainExpired)
//     before the connections close, and Serve returns ErrDrainCutShort so
//     that the process exits non-zero.
//
// Health checks are never counted as in-flight and never refused.

// ErrDrainCutShort is returned by Serve when the drain deadline passed with
// requests still pending; they were answered 503 / UNAVAILABLE.
var ErrDrainCutShort = errors.New("drain cut short")

// errDrainExpired is the cancellation cause of every request context when
// the drain deadline passes.
var errDrainExpired = errors.New("the server shut down before the request finished")

// drainGrace is how long, after the deadline, the answers of cancelled
// requests may take to be written before connections are closed.
const drainGrace = 2 * time.Second

// drainState is the server's side of the shutdown.
type drainState struct {
	draining atomic.Bool  // phase 1 on: readiness is 503
	closing  atomic.Bool  // phase 2 on: new API requests get 503
	inflight atomic.Int64 // API requests being served (health excluded)
	expired  atomic.Int64 // requests answered 503 because the deadline passed

	base   context.Context // every request's context derives from it
	cancel context.CancelCauseFunc
}

func (d *drainState) init() {
	d.base, d.cancel = context.WithCancelCause(context.Background())
}

// shuttingDown is the answer to a request that arrives in phase 2.
func shuttingDown() error {
	return &apiError{kind: kindOverloaded, retryAfter: time.Second,
		msg: "the server is shutting down; retry on another replica"}
}

// drainExpiredError is the answer of a request cut off by the deadline.
func drainExpiredError() error {
	return &apiError{kind: kindOverloaded, retryAfter: time.Second,
		msg: "the server shut down (drain timeout) before the request finished; retry"}
}

// expireDrain answers every pending request 503: their contexts are
// cancelled with errDrainExpired (gRPC calls' through grpc_calls.go), and
// body reads end (openconns.go).
func (s *Server) expireDrain() {
	s.drain.cancel(errDrainExpired)
	s.grpcCalls.cancelAll(errDrainExpired)
	s.httpConns.expireReads()
}

// cutByDrain reports whether ctx was cancelled by the drain deadline.
func cutByDrain(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errDrainExpired)
}

// track counts an HTTP API request as in flight and, once the server is
// closing, answers it 503 instead of serving it.
func (s *Server) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthPaths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		s.drain.inflight.Add(1)
		defer s.drain.inflight.Add(-1)
		if s.drain.closing.Load() {
			s.writeErrorFor(w, r, shuttingDown())
			return
		}
		s.withBudget(w, r, next)
	})
}

// grpcTracked runs one gRPC call (or one request of a stream) as in
// flight: refused when the server is closing, cancelled with the drain's
// cause when the deadline passes and then answered with a message; both
// errors become UNAVAILABLE through the error table.
func (s *Server) grpcTracked(ctx context.Context, call func(context.Context) error) error {
	s.drain.inflight.Add(1)
	defer s.drain.inflight.Add(-1)
	if s.drain.closing.Load() {
		return shuttingDown()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	shard, id := s.grpcCalls.add(cancel)
	defer s.grpcCalls.remove(shard, id)
	if s.drain.base.Err() != nil { // the deadline passed while this call came in
		cancel(context.Cause(s.drain.base))
	}
	err := call(ctx)
	if err != nil && cutByDrain(ctx) {
		s.drain.expired.Add(1)
		return drainExpiredError()
	}
	return err
}

// waitIdle waits until no API request is in flight, or until done.
func (s *Server) waitIdle(done <-chan time.Time) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.drain.inflight.Load() > 0 {
		select {
		case <-done:
			return s.drain.inflight.Load() == 0
		case <-t.C:
		}
	}
	return true
}

// shutdown runs the three phases after Serve's context ends and reports
// whether the drain completed before its deadline.
func (s *Server) shutdown() bool {
	s.drain.draining.Store(true)
	s.log.Info("shutting down: not ready; serving on while load balancers notice", "shutdown_delay", s.cfg.ShutdownDelay, "drain_timeout", s.cfg.DrainTimeout)
	if s.cfg.ShutdownDelay > 0 {
		time.Sleep(s.cfg.ShutdownDelay)
	}
	s.drain.closing.Store(true)
	s.log.Info("shutting down: draining in-flight requests", "in_flight", s.drain.inflight.Load())
	deadline := time.NewTimer(s.cfg.DrainTimeout)
	defer deadline.Stop()
	if s.waitIdle(deadline.C) {
		return true
	}
	pending := s.drain.inflight.Load()
	s.expireDrain()
	grace := time.NewTimer(drainGrace)
	defer grace.Stop()
	s.waitIdle(grace.C)
	s.log.Warn("drain cut short: pending requests answered 503", "drain_timeout", s.cfg.DrainTimeout, "pending", pending, "still_writing", s.drain.inflight.Load())
	return false
}

// drainSummary is the error Serve returns when the drain was cut short.
func (s *Server) drainSummary() error {
	return fmt.Errorf("%w after %s: %d requests were answered 503/UNAVAILABLE", ErrDrainCutShort, s.cfg.DrainTimeout, s.drain.expired.Load())
}
