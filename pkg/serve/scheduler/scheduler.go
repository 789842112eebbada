// Package scheduler is the dynamic batcher between the protocol layer and
// the engines of one model version, in the manner of Triton's dynamic
// batcher and text-embeddings-inference's queue.
//
// Texts are tokenised in the caller's goroutine, so batches are formed on
// token counts. One owner goroutine holds the queue and cuts a batch
// whenever an instance is free: rows that arrived within max_queue_delay are
// merged up to max_batch_size rows and a padded-token budget, companions of
// the oldest row are picked by similar length to reduce padding, and results
// are split back per request in order. Each instance owns one engine and runs
// its batches in parallel with the others; engines are never shared.
//
// The queue is bounded: a full queue answers Overloaded at once with a
// RetryAfter hint, never waits. A request whose context is done is answered
// Timeout and its rows are skipped, never computed. Every accepted request
// gets exactly one answer, and Close drains what was accepted.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
)

// Encoder is the tokenizer as the scheduler needs it; *tokenizer.Tokenizer
// satisfies it.
type Encoder interface {
	// EncodeTo appends the ids of text ([CLS] … [SEP], truncated to
	// MaxLength) to dst and says whether truncation happened.
	EncodeTo(dst []int32, text string) (ids []int32, truncated bool)
	// MaxLength is the longest row EncodeTo produces.
	MaxLength() int
}

// TimeoutAction is what happens to a request that outlives the default
// queue timeout (Triton's ModelQueuePolicy.TimeoutAction).
type TimeoutAction int

// Timeout actions.
const (
	Reject TimeoutAction = iota // answer Timeout and skip the request
	Delay                       // keep it queued; only the client's own deadline ends it
)

// DefaultMaxQueueRows bounds the queue when the config gives no
// max_queue_size: enough for 32 clients × 32 texts, small enough that a
// flood costs megabytes, not gigabytes.
const DefaultMaxQueueRows = 1024

// Config is one model version's batching policy, read from its config.pbtxt
// by the repository.
type Config struct {
	Name, Version string
	// MaxBatchSize caps the texts of one request and the rows of one
	// execution; 0 means no cap on a request and one request per execution.
	MaxBatchSize int
	// Dynamic turns dynamic batching on (a dynamic_batching block exists);
	// without it each request runs alone.
	Dynamic bool
	// Policy is how the queue becomes batches; PolicyContinuous implies
	// Dynamic and ignores MaxQueueDelay.
	Policy Policy
	// NoWait keeps the continuous policy from ever waiting, as
	// text-embeddings-inference does; by default it waits for the clients
	// it has just answered while that is measured to answer more rows per
	// second (filler). M3ECTL_CONTINUOUS_FILL=0 sets it for every model.
	NoWait              bool
	MaxQueueDelay       time.Duration
	PreferredBatchSizes []int
	// MaxBatchTokens caps one execution's padded size, rows × longest row;
	// 0 means MaxBatchSize (or 32) × the encoder's MaxLength. A single row
	// longer than the budget still runs, alone.
	MaxBatchTokens int
	// MaxQueueRows bounds the texts waiting (max_queue_size, counted in texts
	// since that is what costs memory); 0 means DefaultMaxQueueRows.
	MaxQueueRows   int
	DefaultTimeout time.Duration // 0: only the caller's deadline applies
	TimeoutAction  TimeoutAction
	// Truncate lets over-long texts be cut to the encoder's MaxLength;
	// false answers InvalidInput instead.
	Truncate bool
	Metrics  *metrics.Model // may be nil
	Logger   *slog.Logger   // may be nil

	pick pickParams // the filler's windows; zero: defaultPick (tests shrink them)
}

// Scheduler batches the requests of one model version onto its engines.
type Scheduler struct {
	cfg     Config
	enc     Encoder
	engines []engine.Engine
	dim     int
	budget  int
	log     *slog.Logger

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc

	mu       sync.Mutex
	inbox    []row // accepted rows the owner has not taken yet
	queued   int   // rows accepted and not yet cut into a batch
	closed   bool
	notify   chan struct{} // cap 1: the owner has something to look at
	abortCh  chan struct{}
	abortOne sync.Once

	work    chan *batch   // owner → instances; cap = instances, sent only to an idle one
	free    chan freed    // instances → owner; cap = instances
	stopped chan struct{} // closed when the owner and every instance are done

	text      bool // some engine writes JSON text (engine.TextEmbedder)
	inflight  atomic.Int64
	batchEWMA atomic.Int64 // ns, smoothed execution time, for RetryAfter
	seq       atomic.Uint64
	stats     stats
	fill      filler // the owner's alone
}

// New starts a scheduler over engines, one instance per engine; the
// scheduler owns the engines from now on and closes them in Close.
func New(cfg Config, enc Encoder, engines []engine.Engine) (*Scheduler, error) {
	if enc == nil {
		return nil, errors.New("scheduler: no tokenizer")
	}
	if len(engines) == 0 {
		return nil, errors.New("scheduler: no engine instances")
	}
	dim := engines[0].Info().Dim
	if dim <= 0 {
		return nil, fmt.Errorf("scheduler: engine reports embedding width %d", dim)
	}
	if cfg.MaxQueueRows <= 0 {
		cfg.MaxQueueRows = DefaultMaxQueueRows
	}
	if cfg.Policy == PolicyContinuous {
		cfg.Dynamic, cfg.MaxQueueDelay = true, 0
	}
	if os.Getenv("M3ECTL_CONTINUOUS_FILL") == "0" {
		cfg.NoWait = true
	}
	budget := cfg.MaxBatchTokens
	if budget <= 0 {
		rows := cfg.MaxBatchSize
		if rows <= 0 {
			rows = 32
		}
		budget = rows * enc.MaxLength()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		cfg: cfg, enc: enc, engines: engines, dim: dim, budget: budget,
		log: log.With("model", cfg.Name, "version", cfg.Version),
		ctx: ctx, cancel: cancel,
		notify:  make(chan struct{}, 1),
		abortCh: make(chan struct{}),
		work:    make(chan *batch, len(engines)),
		free:    make(chan freed, len(engines)),
		stopped: make(chan struct{}),
	}
	s.stats.batches = map[int]*batchStat{}
	for _, e := range engines {
		if _, ok := e.(engine.TextEmbedder); ok {
			s.text = true
		}
	}
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Add(1)
		go func(e engine.Engine) {
			defer wg.Done()
			s.instance(e)
		}(e)
	}
	go func() {
		s.own()
		wg.Wait()
		for _, e := range s.engines {
			if err := e.Close(); err != nil {
				s.log.Warn("close engine", "err", err)
			}
		}
		cancel()
		close(s.stopped)
	}()
	return s, nil
}

// MaxQueueRows is the queue bound in texts.
func (s *Scheduler) MaxQueueRows() int { return s.cfg.MaxQueueRows }

// Dim is the embedding width every answer's rows have.
func (s *Scheduler) Dim() int { return s.dim }

// Infer embeds texts through the batcher and returns len(texts)×Dim floats,
// row-major, and the number of tokens the texts became. ctx's deadline is the
// request timeout. Errors are *Error.
func (s *Scheduler) Infer(ctx context.Context, texts []string) ([]float32, int, error) {
	arrived := time.Now()
	req, err := s.prepare(ctx, texts)
	return s.submit(req, err, arrived)
}

// InferText is Infer for an answer written as JSON: it also returns each
// text's embedding as JSON numbers where the engine writes them
// (engine.TextEmbedder, the CUDA engine), nil where it does not (a nil
// slice, or a nil row), so that the caller copies bytes instead of
// formatting 768 floats a text. The rows are the engine's memory: the
// caller calls release once it has written them out (and never reads them
// after). A row that comes with its text may come without its floats (emb
// holds zeros or stale numbers there): a batch of such requests only
// leaves the floats on the GPU (engine.Batch.TextOnly).
func (s *Scheduler) InferText(ctx context.Context, texts []string) (emb []float32, text [][]byte, release func(), tokens int, err error) {
	arrived := time.Now()
	req, err := s.prepare(ctx, texts)
	if err == nil && s.text {
		req.text = make([][]byte, len(texts))
		req.out = nil // made by floats if a batch writes them
	}
	emb, tokens, err = s.submit(req, err, arrived)
	if err == nil && emb == nil {
		emb = zeroFloats(len(texts) * s.dim)
	}
	if err != nil {
		return nil, nil, nil, 0, err
	}
	if req.text == nil {
		return emb, nil, func() {}, tokens, nil
	}
	return emb, req.text, req.hold.close, tokens, nil
}

// submit queues a prepared request (or accounts for its preparation error)
// and waits for its answer; Infer and InferIDs share it.
func (s *Scheduler) submit(req *request, err error, arrived time.Time) ([]float32, int, error) {
	if err != nil {
		s.stats.failed(arrived)
		s.cfg.Metrics.Failed(metrics.Other, time.Since(arrived))
		return nil, 0, err
	}
	req.arrived = arrived
	if s.cfg.DefaultTimeout > 0 && s.cfg.TimeoutAction == Reject {
		var cancel context.CancelFunc
		req.ctx, cancel = context.WithTimeout(req.ctx, s.cfg.DefaultTimeout)
		defer cancel()
	}
	if err := s.admit(req); err != nil {
		s.stats.failed(arrived)
		s.cfg.Metrics.Failed(failureReason(req.ctx, err), time.Since(arrived))
		return nil, 0, err
	}
	select {
	case <-req.done:
	case <-req.ctx.Done():
		if req.state.CompareAndSwap(stateWaiting, stateAbandoned) {
			req.hold.close()
			err := contextError(req.ctx, time.Since(arrived))
			s.record(req, err)
			s.signal() // let the owner drop the rows now
			return nil, 0, err
		}
		<-req.done
	}
	// Accounting happens here, in the caller's goroutine, so that an
	// instance answers a whole batch without waiting on statistics locks.
	s.record(req, req.err)
	if req.err != nil {
		req.hold.close()
		return nil, 0, req.err
	}
	return req.out, len(req.ids), nil
}

// prepare validates and tokenises texts in the caller's goroutine.
func (s *Scheduler) prepare(ctx context.Context, texts []string) (*request, error) {
	if len(texts) == 0 {
		return nil, Errorf(InvalidInput, "the request has no texts")
	}
	if s.cfg.MaxBatchSize > 0 && len(texts) > s.cfg.MaxBatchSize {
		return nil, Errorf(InvalidInput, "the request has %d texts, more than model %s's max_batch_size %d", len(texts), s.cfg.Name, s.cfg.MaxBatchSize)
	}
	if len(texts) > s.cfg.MaxQueueRows {
		return nil, Errorf(InvalidInput, "the request has %d texts, more than model %s's queue holds (%d)", len(texts), s.cfg.Name, s.cfg.MaxQueueRows)
	}
	req := &request{ctx: ctx, offsets: make([]int32, 1, len(texts)+1), done: make(chan struct{})}
	for i, t := range texts {
		if !utf8.ValidString(t) {
			return nil, Errorf(InvalidInput, "text %d is not valid UTF-8", i)
		}
		var truncated bool
		req.ids, truncated = s.enc.EncodeTo(req.ids, t)
		if truncated && !s.cfg.Truncate {
			return nil, Errorf(InvalidInput, "text %d is longer than model %s's %d-token window and truncation is off", i, s.cfg.Name, s.enc.MaxLength())
		}
		req.offsets = append(req.offsets, int32(len(req.ids)))
	}
	req.out = make([]float32, len(texts)*s.dim)
	req.remaining.Store(int32(len(texts)))
	return req, nil
}

// admit puts the request's rows in the inbox, or refuses at once when the
// scheduler is closing or the queue is full.
func (s *Scheduler) admit(req *request) error {
	n := req.rows()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Errorf(Unavailable, "model %s version %s is unloading", s.cfg.Name, s.cfg.Version)
	}
	reserved := takeReserved(req.ctx, s, n)
	if !reserved && s.queued+n > s.cfg.MaxQueueRows {
		queued := s.queued
		s.mu.Unlock()
		return &Error{Kind: Overloaded, RetryAfter: s.retryAfter(queued),
			Msg: fmt.Sprintf("model %s is overloaded: %d texts queued, the limit is %d", s.cfg.Name, queued, s.cfg.MaxQueueRows)}
	}
	depth := s.queued
	if !reserved {
		s.queued += n // a reservation already counted its rows
	}
	req.enqueued = time.Now()
	for i := 0; i < n; i++ {
		s.inbox = append(s.inbox, row{req: req, idx: i, n: int(req.offsets[i+1] - req.offsets[i])})
	}
	s.mu.Unlock()
	s.cfg.Metrics.Enqueued(depth)
	s.cfg.Metrics.Pending(int(s.inflight.Add(1)))
	s.signal()
	return nil
}

// retryAfter estimates when the queue will have room: the batches ahead of
// a newcomer times the recent execution time, spread over the instances.
func (s *Scheduler) retryAfter(queued int) time.Duration {
	per := s.cfg.MaxBatchSize
	if per <= 0 {
		per = 1
	}
	batches := (queued + per - 1) / per / len(s.engines)
	d := time.Duration(s.batchEWMA.Load())*time.Duration(batches+1) + s.cfg.MaxQueueDelay
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	return d
}

func (s *Scheduler) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// answer gives req its one answer, unless the caller already gave up; the
// caller records it.
func (s *Scheduler) answer(req *request, err error) {
	if !req.state.CompareAndSwap(stateWaiting, stateAnswered) {
		return
	}
	req.err = err
	close(req.done)
}

// record accounts an answered request in the statistics and metrics: a
// failure whole, a success by its latency (the instance that answered it
// counted the rest with its batch, answerSums).
func (s *Scheduler) record(req *request, err error) {
	s.cfg.Metrics.Pending(int(s.inflight.Add(-1)))
	total := time.Since(req.arrived)
	if err != nil {
		s.stats.failed(req.arrived)
		s.cfg.Metrics.Failed(failureReason(req.ctx, err), total)
		return
	}
	s.stats.completed(total)
	s.cfg.Metrics.Completed(total)
}

func contextError(ctx context.Context, waited time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Errorf(Timeout, "request timed out after %s before it could run", waited.Round(time.Microsecond))
	}
	return Errorf(Unavailable, "request cancelled by the client after %s", waited.Round(time.Microsecond))
}

// Close stops accepting requests, lets the queued ones run, waits for the
// instances to finish and closes the engines. When ctx ends first, requests
// still queued are answered Unavailable and Close returns ctx's error; the
// engines are closed once the running batches end.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		s.abortOne.Do(func() { close(s.abortCh) })
		s.cancel()
		return fmt.Errorf("drain model %s version %s: %w", s.cfg.Name, s.cfg.Version, ctx.Err())
	}
}
