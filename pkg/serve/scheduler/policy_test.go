package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

func TestParsePolicy(t *testing.T) {
	cases := []struct {
		in   string
		want Policy
		ok   bool
	}{
		{"continuous", PolicyContinuous, true},
		{" Continuous ", PolicyContinuous, true},
		{"triton", PolicyTriton, true},
		{"dynamic", PolicyTriton, true},
		{"", 0, false},
		{"eager", 0, false},
	}
	for _, c := range cases {
		got, err := ParsePolicy(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if c.ok {
			if back, err := ParsePolicy(got.String()); err != nil || back != got {
				t.Errorf("%v does not read back from its name %q", got, got.String())
			}
		}
	}
}

// A lone request under the continuous policy runs at once even though the
// config's max_queue_delay is an hour; under Triton's it waits for the delay
// (here: until its deadline).
func TestContinuousDoesNotWaitForTheQueueDelay(t *testing.T) {
	for _, c := range []struct {
		policy  Policy
		timeout bool
	}{{PolicyContinuous, false}, {PolicyTriton, true}} {
		t.Run(c.policy.String(), func(t *testing.T) {
			eng := &fakeEngine{}
			s := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: time.Hour, Policy: c.policy}, eng)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			emb, _, err := s.Infer(ctx, []string{"alone"})
			if c.timeout {
				if k, ok := kindOf(err); !ok || k != Timeout {
					t.Fatalf("triton policy: got %v, want the request to wait out its deadline (Timeout)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, []string{"alone"}, emb)
			if b := eng.batches(); len(b) != 1 || b[0].rows != 1 {
				t.Errorf("batches %+v, want one of one row", b)
			}
		})
	}
}

// While the only instance is busy, what queues forms the next batches,
// capped by max_batch_size, and each is dispatched as soon as the instance
// is free.
func TestContinuousBatchesWhatQueuedWhileBusy(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 16)
	eng := &fakeEngine{gate: gate, started: started}
	s := start(t, Config{MaxBatchSize: 3, Policy: PolicyContinuous}, eng)
	var wg sync.WaitGroup
	infer := func(text string) { defer wg.Done(); inferOne(t, s, text) }
	wg.Add(1)
	go infer("first")
	<-started // the instance is busy with "first" alone
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go infer(fmt.Sprint("queued", i))
	}
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.queued == 5
	})
	for i := 0; i < 3; i++ {
		gate <- struct{}{}
		if i < 2 {
			<-started
		}
	}
	wg.Wait()
	var rows []int
	for _, b := range eng.batches() {
		rows = append(rows, b.rows)
	}
	if fmt.Sprint(rows) != "[1 3 2]" {
		t.Errorf("batch rows %v, want [1 3 2]: the lone request at once, then the queue in batches of max_batch_size", rows)
	}
}

// intoEngine is a fakeEngine that writes into the scheduler's buffer
// (engine.IntoEmbedder) and records whether it was handed one.
type intoEngine struct {
	*fakeEngine
	calls atomic.Int32
}

func (f *intoEngine) EmbedInto(ctx context.Context, b *engine.Batch, dst []float32) ([]float32, error) {
	f.calls.Add(1)
	out, err := f.Embed(ctx, b)
	if err != nil {
		return nil, err
	}
	if len(dst) < len(out) {
		return nil, fmt.Errorf("destination of %d floats for %d", len(dst), len(out))
	}
	return dst[:copy(dst, out)], nil
}

// Answers stay each text's own when every batch reuses the instance's one
// output buffer, batch after batch of different sizes.
func TestReusedOutputBuffer(t *testing.T) {
	eng := &intoEngine{fakeEngine: &fakeEngine{}}
	s, err := New(Config{Name: "tiny", Version: "1", MaxBatchSize: 8, Policy: PolicyContinuous, Logger: quiet}, fakeEncoder{testMaxLen}, []engine.Engine{eng})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			texts := []string{fmt.Sprint("t", i), strings.Repeat("x", i%7)}[:1+i%2]
			emb, _, err := s.Infer(context.Background(), texts)
			if err != nil {
				t.Error(err)
				return
			}
			checkRows(t, texts, emb)
		}(i)
	}
	wg.Wait()
	if eng.calls.Load() == 0 {
		t.Error("the scheduler never used EmbedInto")
	}
}
