package scheduler

import (
	"context"
	"testing"
)

// TestReservationAdmitsWholeOrNothing: with 6 of 10 queue rows taken, a
// 5-text request in pieces is refused whole (Overloaded, nothing taken); a
// 4-text one is admitted whole, its pieces run although the queue is then
// full, and other requests meanwhile see the queue full; a request that can
// never fit is InvalidInput.
func TestReservationAdmitsWholeOrNothing(t *testing.T) {
	eng := &fakeEngine{gate: make(chan struct{}), started: make(chan struct{}, 8)}
	s := start(t, Config{MaxBatchSize: 2, Dynamic: true, MaxQueueRows: 10}, eng)
	queued := func() int { s.mu.Lock(); defer s.mu.Unlock(); return s.queued }
	// One batch runs (held at the gate); 6 rows wait behind it.
	held := make(chan error, 4)
	for _, texts := range [][]string{{"a", "b"}, {"c", "d"}, {"e", "f"}, {"g", "h"}} {
		go func() { _, _, err := s.Infer(context.Background(), texts); held <- err }()
	}
	<-eng.started
	waitFor(t, func() bool { return queued() == 6 })

	if _, err := s.Reserve(11); err == nil {
		t.Fatal("a reservation larger than the queue was granted")
	} else if k, _ := kindOf(err); k != InvalidInput {
		t.Errorf("11 of 10: %v, want InvalidInput", err)
	}
	if _, err := s.Reserve(5); err == nil {
		t.Fatal("5 rows reserved beside 6 of 10")
	} else if k, _ := kindOf(err); k != Overloaded {
		t.Errorf("5 beside 6 of 10: %v, want Overloaded", err)
	}
	if q := queued(); q != 6 {
		t.Fatalf("a refused reservation left %d rows queued, want 6", q)
	}
	r, err := s.Reserve(4)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Infer(context.Background(), []string{"x"}); err == nil {
		t.Error("a request without the reservation was admitted into reserved space")
	}
	ctx := WithReservation(context.Background(), r)
	pieces := make(chan error, 2)
	for _, texts := range [][]string{{"p1", "p2"}, {"p3", "p4"}} {
		go func() { _, _, err := s.Infer(ctx, texts); pieces <- err }()
	}
	waitFor(t, func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.left == 0 })
	close(eng.gate)
	for range 4 {
		if err := <-held; err != nil {
			t.Error(err)
		}
	}
	for range 2 {
		if err := <-pieces; err != nil {
			t.Errorf("a reserved piece: %v", err)
		}
	}
	r.Release()
	if q := queued(); q != 0 {
		t.Errorf("%d rows queued after everything ran", q)
	}
	// Space reserved and not drawn comes back on Release.
	r2, err := s.Reserve(10)
	if err != nil {
		t.Fatal(err)
	}
	r2.Release()
	if q := queued(); q != 0 {
		t.Errorf("%d rows queued after an unused reservation was released", q)
	}
}
