package serve

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDrainDeadlineCancelsGRPCCalls: the deadline cancels every call in
// flight with the drain's cause, whatever shard it sits in, and a call
// that comes in after the deadline is cancelled at once.
func TestDrainDeadlineCancelsGRPCCalls(t *testing.T) {
	s := &Server{}
	s.drain.init()
	const calls = 200
	started := make(chan struct{}, calls)
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		go func() {
			errs <- s.grpcTracked(context.Background(), func(ctx context.Context) error {
				started <- struct{}{}
				<-ctx.Done()
				return context.Cause(ctx)
			})
		}()
	}
	for i := 0; i < calls; i++ {
		<-started
	}
	s.expireDrain()
	for i := 0; i < calls; i++ {
		select {
		case err := <-errs:
			var ae *apiError
			if !errors.As(err, &ae) || ae.kind != kindOverloaded {
				t.Fatalf("call %d answered %v, want the drain's 503/UNAVAILABLE", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d calls ended after the deadline", i, calls)
		}
	}
	late := s.grpcTracked(context.Background(), func(ctx context.Context) error {
		<-ctx.Done()
		return context.Cause(ctx)
	})
	if !errors.Is(late, errDrainExpired) && !cutByDrainErr(late) {
		t.Errorf("a call after the deadline returned %v", late)
	}
}

func cutByDrainErr(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.kind == kindOverloaded
}

// BenchmarkGRPCTracked is grpcTracked's own cost per call, with calls on
// every core at once (where the drain's base context used to be one lock).
func BenchmarkGRPCTracked(b *testing.B) {
	s := &Server{}
	s.drain.init()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for pb.Next() {
			_ = s.grpcTracked(ctx, func(context.Context) error { return nil })
		}
	})
}
