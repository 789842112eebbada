package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// fakePipeliner is a fakeEngine behind engine.Pipeliner, as strict as the
// CUDA engine's contract: Submit returns at once, batches run one after the
// other in submission order, at most two are in flight, and Nearly fires
// when a batch starts running (so a test sees the next one queued behind
// it while it is held at the gate).
type fakePipeliner struct {
	*fakeEngine
	off      bool // Pipelined reports false
	mu       sync.Mutex
	last     *fakeFlight
	flights  [2]*fakeFlight
	next     int
	inflight atomic.Int32
	peak     atomic.Int32
	misuse   atomic.Value // string: a contract violation
}

type fakeFlight struct {
	out          []float32
	err          error
	nearly, done chan struct{}
}

func (f *fakePipeliner) Pipelined() bool { return !f.off }

func (f *fakePipeliner) Submit(ctx context.Context, b *engine.Batch) (engine.Ticket, error) {
	n := f.inflight.Add(1)
	if n > 2 {
		f.misuse.Store(fmt.Sprintf("%d batches in flight", n))
	}
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	rows := make([][]int32, b.Rows())
	for i := range rows {
		rows[i] = append([]int32(nil), b.Row(i)...)
	}
	cp := engine.NewBatch(rows) // b may be reused once Submit returns
	fl := &fakeFlight{nearly: make(chan struct{}), done: make(chan struct{})}
	f.mu.Lock()
	prev := f.last
	f.last = fl
	slot := f.next
	if f.flights[slot] != nil {
		f.misuse.Store("slot reused before Await")
	}
	f.flights[slot] = fl
	f.next = 1 - slot
	f.mu.Unlock()
	go func() {
		if prev != nil {
			<-prev.done
		}
		close(fl.nearly)
		fl.out, fl.err = f.fakeEngine.Embed(ctx, cp)
		close(fl.done)
	}()
	return engine.Ticket{Slot: slot, Rows: b.Rows()}, nil
}

func (f *fakePipeliner) flight(t engine.Ticket) *fakeFlight {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flights[t.Slot]
}

func (f *fakePipeliner) Nearly(t engine.Ticket) error {
	<-f.flight(t).nearly
	return nil
}

func (f *fakePipeliner) Await(t engine.Ticket, dst []float32) ([]float32, error) {
	fl := f.flight(t)
	<-fl.done
	f.mu.Lock()
	f.flights[t.Slot] = nil
	f.mu.Unlock()
	f.inflight.Add(-1)
	if fl.err != nil {
		return nil, fl.err
	}
	if len(dst) < len(fl.out) {
		dst = make([]float32, len(fl.out))
	}
	return dst[:copy(dst, fl.out)], nil
}

func startPipelined(t *testing.T, cfg Config, engines ...*fakePipeliner) *Scheduler {
	t.Helper()
	cfg.Name, cfg.Version = "tiny", "1"
	es := make([]engine.Engine, len(engines))
	for i, e := range engines {
		es[i] = e
	}
	// Registered first, so it runs after startEngines' Close.
	t.Cleanup(func() {
		for _, e := range engines {
			if m := e.misuse.Load(); m != nil {
				t.Errorf("engine contract broken: %s", m)
			}
		}
	})
	return startEngines(t, cfg, es)
}

// The next batch is cut and queued while the GPU still runs the first: the
// pipelined instance hands its token back at Nearly, not at the end.
func TestPipelinedQueuesTheNextBatchWhileOneRuns(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 8)
	eng := &fakePipeliner{fakeEngine: &fakeEngine{gate: gate, started: started}}
	s := startPipelined(t, Config{MaxBatchSize: 8, Policy: PolicyContinuous}, eng)
	var wg sync.WaitGroup
	infer := func(text string) { defer wg.Done(); inferOne(t, s, text) }
	wg.Add(1)
	go infer("first")
	<-started // the first batch runs, held at the gate
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go infer(fmt.Sprint("queued", i))
	}
	waitFor(t, func() bool { return eng.inflight.Load() == 2 })
	close(gate)
	wg.Wait()
	if p := eng.peak.Load(); p != 2 {
		t.Errorf("peak batches in flight %d, want 2", p)
	}
	b := eng.batches()
	if len(b) < 2 || b[0].rows != 1 {
		t.Fatalf("batches %+v: want the first alone, then the rows that queued behind it", b)
	}
	rows := 0
	for _, x := range b {
		rows += x.rows
	}
	if rows != 4 {
		t.Errorf("%d rows computed, want 4", rows)
	}
}

// Many clients on one and two pipelined instances: every answer is its own
// text's, in order, and no engine ever holds more than two batches.
func TestPipelinedAnswersEveryRequest(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n, "instances"), func(t *testing.T) {
			engines := make([]*fakePipeliner, n)
			for i := range engines {
				engines[i] = &fakePipeliner{fakeEngine: &fakeEngine{}}
			}
			s := startPipelined(t, Config{MaxBatchSize: 16, Policy: PolicyContinuous}, engines...)
			var wg sync.WaitGroup
			for c := 0; c < 24; c++ {
				wg.Add(1)
				go func(c int) {
					defer wg.Done()
					for r := 0; r < 20; r++ {
						texts := []string{fmt.Sprint("c", c, "r", r), strings.Repeat("x", c%7+1)}
						emb, _, err := s.Infer(context.Background(), texts)
						if err != nil {
							t.Error(err)
							return
						}
						checkRows(t, texts, emb)
					}
				}(c)
			}
			wg.Wait()
			if st := s.Statistics(); st.InferenceStats.Success.Count != 24*20 {
				t.Errorf("%d successes, want %d", st.InferenceStats.Success.Count, 24*20)
			}
		})
	}
}

func TestPipelinedEngineFailureAnswersEveryRequest(t *testing.T) {
	eng := &fakePipeliner{fakeEngine: &fakeEngine{fail: errors.New("device lost")}}
	s := startPipelined(t, Config{MaxBatchSize: 8, Policy: PolicyContinuous}, eng)
	inferAllFail(t, s, 6, "device lost")
}

// An engine that says Pipelined() == false runs one batch at a time
// through Embed, as every other engine does.
func TestPipelineSwitchedOffUsesEmbed(t *testing.T) {
	eng := &fakePipeliner{fakeEngine: &fakeEngine{}, off: true}
	s := startPipelined(t, Config{MaxBatchSize: 8, Policy: PolicyContinuous}, eng)
	emb, _, err := s.Infer(context.Background(), []string{"a", "bb"})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, []string{"a", "bb"}, emb)
	if eng.peak.Load() != 0 {
		t.Errorf("Submit was called %d times at once, want never", eng.peak.Load())
	}
}
