package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

const testMaxLen = 64

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func start(t *testing.T, cfg Config, engines ...*fakeEngine) *Scheduler {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name, cfg.Version = "tiny", "1"
	}
	es := make([]engine.Engine, len(engines))
	for i, e := range engines {
		es[i] = e
	}
	return startEngines(t, cfg, es)
}

// startEngines starts a scheduler over es and closes it when the test ends.
func startEngines(t *testing.T, cfg Config, es []engine.Engine) *Scheduler {
	t.Helper()
	cfg.Logger = quiet
	s, err := New(cfg, fakeEncoder{testMaxLen}, es)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// checkRows asserts that every answer row is its own text's embedding.
func checkRows(t *testing.T, texts []string, emb []float32) {
	t.Helper()
	if len(emb) != len(texts)*fakeDim {
		t.Fatalf("got %d floats for %d texts", len(emb), len(texts))
	}
	for i, txt := range texts {
		want := textEmbedding(txt, testMaxLen)
		got := [fakeDim]float32(emb[i*fakeDim : (i+1)*fakeDim])
		if got != want {
			t.Fatalf("row %d (%q): got %v, want %v: answer rows out of order", i, txt, got, want)
		}
	}
}

func kindOf(err error) (ErrorKind, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind, true
	}
	return 0, false
}

func TestConcurrentRequestsAreBatched(t *testing.T) {
	eng := &fakeEngine{}
	s := start(t, Config{MaxBatchSize: 32, Dynamic: true, MaxQueueDelay: 50 * time.Millisecond}, eng)
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			texts := []string{fmt.Sprintf("request %d", i)}
			emb, _, err := s.Infer(context.Background(), texts)
			if err != nil {
				t.Error(err)
				return
			}
			checkRows(t, texts, emb)
		}(i)
	}
	wg.Wait()
	st := s.Statistics()
	if st.InferenceCount != n {
		t.Errorf("inference_count %d, want %d", st.InferenceCount, n)
	}
	if st.ExecutionCount >= n {
		t.Errorf("execution_count %d for %d concurrent requests: nothing was batched", st.ExecutionCount, n)
	}
	if got := st.InferenceStats.Success.Count; got != n {
		t.Errorf("success count %d, want %d", got, n)
	}
	var rows uint64
	for _, b := range st.BatchStats {
		rows += b.BatchSize * b.ComputeInfer.Count
	}
	if rows != n {
		t.Errorf("batch_stats account for %d rows, want %d", rows, n)
	}
}

func TestAnswersKeepRequestOrder(t *testing.T) {
	eng := &fakeEngine{}
	s := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: 20 * time.Millisecond}, eng)
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Lengths vary inside a request so that sorting rows by length
			// inside a batch would scramble them if they were not put back.
			texts := make([]string, 1+i%8)
			for j := range texts {
				texts[j] = fmt.Sprintf("r%d-%s", i, strings.Repeat("x", (7*j+i)%13))
			}
			emb, tokens, err := s.Infer(context.Background(), texts)
			if err != nil {
				t.Error(err)
				return
			}
			checkRows(t, texts, emb)
			want := 0
			for _, tx := range texts {
				want += len(tx) + 2
			}
			if tokens != want {
				t.Errorf("tokens %d, want %d", tokens, want)
			}
		}(i)
	}
	wg.Wait()
}

func TestBatchLimits(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		maxRows   int
		maxPadded int
	}{
		{"max_batch_size caps rows", Config{MaxBatchSize: 4, Dynamic: true, MaxQueueDelay: 30 * time.Millisecond}, 4, 0},
		{"token budget caps rows x longest", Config{MaxBatchSize: 32, MaxBatchTokens: 60, Dynamic: true, MaxQueueDelay: 30 * time.Millisecond}, 32, 60},
		{"preferred batch size", Config{MaxBatchSize: 32, PreferredBatchSizes: []int{2}, Dynamic: true, MaxQueueDelay: 30 * time.Millisecond}, 2, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eng := &fakeEngine{}
			s := start(t, c.cfg, eng)
			var wg sync.WaitGroup
			for i := 0; i < 24; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					texts := []string{strings.Repeat("a", 3+i%10)}
					emb, _, err := s.Infer(context.Background(), texts)
					if err != nil {
						t.Error(err)
						return
					}
					checkRows(t, texts, emb)
				}(i)
			}
			wg.Wait()
			for _, b := range eng.batches() {
				if b.rows > c.maxRows {
					t.Errorf("batch of %d rows, limit %d", b.rows, c.maxRows)
				}
				if c.maxPadded > 0 && b.rows > 1 && b.rows*b.maxLen > c.maxPadded {
					t.Errorf("batch of %d rows × %d tokens = %d padded tokens, budget %d", b.rows, b.maxLen, b.rows*b.maxLen, c.maxPadded)
				}
			}
		})
	}
}

func TestWithoutDynamicBatchingEachRequestRunsAlone(t *testing.T) {
	eng := &fakeEngine{}
	s := start(t, Config{MaxBatchSize: 8}, eng)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			texts := []string{fmt.Sprintf("req%d-a", i), fmt.Sprintf("req%d-b", i)}
			if _, _, err := s.Infer(context.Background(), texts); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	for _, b := range eng.batches() {
		prefix := strings.SplitN(b.texts[0], "-", 2)[0]
		for _, tx := range b.texts {
			if !strings.HasPrefix(tx, prefix+"-") {
				t.Fatalf("batch mixes requests: %q", b.texts)
			}
		}
	}
	if got := s.Statistics().ExecutionCount; got != 10 {
		t.Errorf("execution_count %d, want 10 (one per request)", got)
	}
}

func TestInvalidInput(t *testing.T) {
	s := start(t, Config{MaxBatchSize: 2, Dynamic: true}, &fakeEngine{})
	long := strings.Repeat("y", 2*testMaxLen)
	cases := []struct {
		name  string
		texts []string
		want  string
	}{
		{"no texts", nil, "no texts"},
		{"more rows than max_batch_size", []string{"a", "b", "c"}, "max_batch_size 2"},
		{"invalid UTF-8", []string{"ok", "bad \xff"}, "text 1 is not valid UTF-8"},
		{"too long without truncation", []string{long}, "truncation is off"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := s.Infer(context.Background(), c.texts)
			if k, ok := kindOf(err); !ok || k != InvalidInput {
				t.Fatalf("got %v, want InvalidInput", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
	if got := s.Statistics().InferenceStats.Fail.Count; got != uint64(len(cases)) {
		t.Errorf("fail count %d, want %d", got, len(cases))
	}
}

func TestTruncationCutsLongTexts(t *testing.T) {
	s := start(t, Config{MaxBatchSize: 2, Dynamic: true, Truncate: true}, &fakeEngine{})
	_, tokens, err := s.Infer(context.Background(), []string{strings.Repeat("z", 1000)})
	if err != nil {
		t.Fatal(err)
	}
	if tokens != testMaxLen {
		t.Errorf("tokens %d, want the %d-token window", tokens, testMaxLen)
	}
}

func TestFullQueueIsOverloaded(t *testing.T) {
	eng := &fakeEngine{gate: make(chan struct{}), started: make(chan struct{}, 16)}
	s := start(t, Config{MaxBatchSize: 1, Dynamic: true, MaxQueueRows: 3}, eng)
	results := make(chan error, 8)
	submit := func(i int) {
		go func() {
			_, _, err := s.Infer(context.Background(), []string{fmt.Sprint("q", i)})
			results <- err
		}()
	}
	submit(0)
	<-eng.started // the instance holds request 0; the queue is empty
	for i := 1; i <= 3; i++ {
		submit(i)
	}
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.queued == 3 })
	_, _, err := s.Infer(context.Background(), []string{"one too many"})
	var e *Error
	if !errors.As(err, &e) || e.Kind != Overloaded {
		t.Fatalf("got %v, want Overloaded", err)
	}
	if e.RetryAfter <= 0 {
		t.Errorf("RetryAfter %v, want > 0", e.RetryAfter)
	}
	for i := 0; i < 4; i++ {
		go func() { <-eng.started }()
		eng.gate <- struct{}{}
	}
	for i := 0; i < 4; i++ {
		if err := <-results; err != nil {
			t.Errorf("accepted request failed: %v", err)
		}
	}
}

func TestTimedOutRequestsAreSkipped(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"client deadline", Config{MaxBatchSize: 4, Dynamic: true},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 30*time.Millisecond)
			}},
		{"default_timeout_microseconds", Config{MaxBatchSize: 4, Dynamic: true, DefaultTimeout: 30 * time.Millisecond},
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eng := &fakeEngine{gate: make(chan struct{}), started: make(chan struct{}, 4)}
			s := start(t, c.cfg, eng)
			first := make(chan error, 1)
			go func() {
				_, _, err := s.Infer(context.Background(), []string{"blocker"})
				first <- err
			}()
			<-eng.started
			ctx, cancel := c.ctx()
			defer cancel()
			// The default timeout must not hit the blocker, which was
			// answered by its own context: it only bounds queueing here.
			_, _, err := s.Infer(ctx, []string{"late"})
			if k, ok := kindOf(err); !ok || k != Timeout {
				t.Fatalf("got %v, want Timeout", err)
			}
			close(eng.gate)
			if c.cfg.DefaultTimeout == 0 {
				if err := <-first; err != nil {
					t.Fatalf("blocker: %v", err)
				}
			} else {
				<-first
			}
			// Give the owner a chance to (wrongly) run the late row.
			if _, _, err := s.Infer(context.Background(), []string{"after"}); err != nil && c.cfg.DefaultTimeout == 0 {
				t.Fatal(err)
			}
			for _, b := range eng.batches() {
				for _, tx := range b.texts {
					if tx == "late" {
						t.Fatal("a timed-out request was computed")
					}
				}
			}
		})
	}
}

func TestInstancesRunInParallel(t *testing.T) {
	var running, peak atomic.Int32
	gate := make(chan struct{})
	started := make(chan struct{}, 8)
	a := &fakeEngine{gate: gate, started: started, running: &running, peak: &peak}
	b := &fakeEngine{gate: gate, started: started, running: &running, peak: &peak}
	s := start(t, Config{MaxBatchSize: 1, Dynamic: true}, a, b)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, _, err := s.Infer(context.Background(), []string{fmt.Sprint("p", i)}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	<-started
	<-started // both instances are inside Embed at once
	close(gate)
	wg.Wait()
	if peak.Load() != 2 {
		t.Errorf("peak concurrent executions %d, want 2", peak.Load())
	}
	if len(a.batches()) != 1 || len(b.batches()) != 1 {
		t.Errorf("instances ran %d and %d batches, want 1 each", len(a.batches()), len(b.batches()))
	}
}

func TestEngineFailureAnswersEveryRequest(t *testing.T) {
	eng := &fakeEngine{fail: errors.New("device lost")}
	s := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: 10 * time.Millisecond}, eng)
	inferAllFail(t, s, 6, "device lost")
	st := s.Statistics()
	if st.InferenceStats.Fail.Count != 6 || st.InferenceStats.Success.Count != 0 {
		t.Errorf("fail %d success %d, want 6 and 0", st.InferenceStats.Fail.Count, st.InferenceStats.Success.Count)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// inferOne sends one text and checks its row.
func inferOne(t *testing.T, s *Scheduler, text string) {
	t.Helper()
	emb, _, err := s.Infer(context.Background(), []string{text})
	if err != nil {
		t.Error(err)
		return
	}
	checkRows(t, []string{text}, emb)
}

// inferAllFail sends n two-text requests at once and wants each answered
// Internal with the engine's failure message in it.
func inferAllFail(t *testing.T, s *Scheduler, n int, msg string) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.Infer(context.Background(), []string{"x", "yy"})
			if k, ok := kindOf(err); !ok || k != Internal || !strings.Contains(err.Error(), msg) {
				t.Errorf("got %v, want Internal saying %s", err, msg)
			}
		}()
	}
	wg.Wait()
}
