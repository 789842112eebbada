package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

func TestCloseDrainsAcceptedRequests(t *testing.T) {
	eng := &fakeEngine{gate: make(chan struct{}), started: make(chan struct{}, 64)}
	s, err := New(Config{Name: "tiny", Version: "1", Logger: quiet, MaxBatchSize: 2, Dynamic: true}, fakeEncoder{testMaxLen}, []engine.Engine{eng})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			_, _, err := s.Infer(context.Background(), []string{fmt.Sprint("d", i)})
			errs <- err
		}(i)
	}
	<-eng.started
	waitFor(t, func() bool { return s.inflight.Load() == n })
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.closed })
	if _, _, err := s.Infer(context.Background(), []string{"too late"}); err == nil {
		t.Error("Infer after Close succeeded")
	} else if k, _ := kindOf(err); k != Unavailable {
		t.Errorf("Infer after Close: %v, want Unavailable", err)
	}
	go func() {
		for range eng.started {
		}
	}()
	close(eng.gate)
	answered := 0
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("accepted request failed during drain: %v", err)
		}
		answered++
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !eng.closed.Load() {
		t.Error("Close did not close the engine")
	}
	if answered != n {
		t.Errorf("%d answers for %d requests", answered, n)
	}
}

func TestCloseTimeoutAnswersQueuedRequests(t *testing.T) {
	eng := &fakeEngine{gate: make(chan struct{}), started: make(chan struct{}, 4)}
	s, err := New(Config{Name: "tiny", Version: "1", Logger: quiet, MaxBatchSize: 1, Dynamic: true}, fakeEncoder{testMaxLen}, []engine.Engine{eng})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func(i int) {
			_, _, err := s.Infer(context.Background(), []string{fmt.Sprint("c", i)})
			errs <- err
		}(i)
	}
	<-eng.started
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.queued == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err == nil {
		t.Fatal("Close returned nil while a batch was stuck")
	}
	// The stuck batch ends with the cancelled context; the queued requests
	// were answered Unavailable. Every request gets exactly one answer.
	for i := 0; i < 3; i++ {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("a request succeeded although its engine never ran")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a request was never answered")
		}
	}
}

func TestEveryRequestAnsweredOnce(t *testing.T) {
	eng := &fakeEngine{}
	s := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: time.Millisecond, MaxQueueRows: 40}, eng)
	const n = 200
	var wg sync.WaitGroup
	var answers, oks atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx := context.Background()
			if i%5 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(i%3)*time.Millisecond)
				defer cancel()
			}
			texts := make([]string, 1+i%3)
			for j := range texts {
				texts[j] = fmt.Sprintf("e%d.%d", i, j)
			}
			emb, _, err := s.Infer(ctx, texts)
			answers.Add(1)
			if err == nil {
				oks.Add(1)
				checkRows(t, texts, emb)
			} else if _, ok := kindOf(err); !ok {
				t.Errorf("untyped error %v", err)
			}
		}(i)
	}
	wg.Wait()
	if answers.Load() != n {
		t.Fatalf("%d answers for %d requests", answers.Load(), n)
	}
	st := s.Statistics().InferenceStats
	if st.Success.Count+st.Fail.Count != n {
		t.Errorf("statistics count %d successes + %d failures, want %d in all", st.Success.Count, st.Fail.Count, n)
	}
	if int64(st.Success.Count) != oks.Load() {
		t.Errorf("statistics count %d successes, callers saw %d", st.Success.Count, oks.Load())
	}
}
