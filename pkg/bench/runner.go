package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Client sends one pre-encoded request and waits for its answer. Request i
// selects the i-th pre-encoded body (modulo their number); implementations
// must be safe for concurrent use and allocate as little as possible per call.
type Client interface {
	Do(ctx context.Context, i int) error
	Close() error
}

// Config describes a run: which levels, how long, and where time and
// requests come from.
type Config struct {
	Label    string
	URL      string
	Model    string
	Protocol string
	// Concurrency lists the closed-loop levels. With Rates set, its largest
	// value caps the requests in flight of the open loop.
	Concurrency []int
	// Rates, when set, switches to open loop: one level per arrival rate
	// (requests/s), Poisson arrivals, latency from the intended send time.
	Rates    []float64
	Warmup   time.Duration
	Duration time.Duration
	// Stable repeats windows of Window (default 5 s) until the last three
	// agree within Threshold (default 10%) on throughput and mean latency, at
	// most MaxWindows (default 10) windows.
	Stable     bool
	Window     time.Duration
	MaxWindows int
	Threshold  float64
	// Timeout bounds each request (default 30 s).
	Timeout         time.Duration
	TextsPerRequest int
	// Seed makes the open loop's arrival times reproducible.
	Seed uint64

	Clock    Clock       // default RealClock
	Client   Client      // required
	Stats    StatsSource // optional server-side statistics
	Progress *Progress   // optional live progress
	Logger   *slog.Logger
}

func (c *Config) defaults() error {
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 5 * time.Second
	}
	if c.MaxWindows <= 0 {
		c.MaxWindows = 10
	}
	if c.MaxWindows < 3 {
		return fmt.Errorf("stable mode needs at least 3 windows, got %d", c.MaxWindows)
	}
	if c.Threshold <= 0 {
		c.Threshold = 0.10
	}
	if c.TextsPerRequest <= 0 {
		c.TextsPerRequest = 1
	}
	if c.Client == nil {
		return errors.New("no client")
	}
	if len(c.Concurrency) == 0 {
		return errors.New("no concurrency levels")
	}
	if !c.Stable && c.Duration <= 0 {
		return fmt.Errorf("duration must be positive, got %s", c.Duration)
	}
	if c.Stable && len(c.Rates) > 0 {
		return errors.New("--stable applies to the closed loop; it cannot be combined with --rate")
	}
	return nil
}

// Run measures every level in order and returns the result. A level's
// request failures are data, not errors; Run fails only when it cannot
// measure at all (context cancelled, bad configuration).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	mode := "closed"
	if len(cfg.Rates) > 0 {
		mode = "open"
	}
	res := &Result{
		Label: cfg.Label, URL: cfg.URL, Model: cfg.Model, Protocol: cfg.Protocol,
		Mode: mode, TextsPerRequest: cfg.TextsPerRequest, StartedAt: cfg.Clock.Now().UTC(),
	}
	type plan struct {
		conc int
		rate float64
	}
	var plans []plan
	if mode == "open" {
		cap := 0
		for _, c := range cfg.Concurrency {
			cap = max(cap, c)
		}
		for _, r := range cfg.Rates {
			plans = append(plans, plan{cap, r})
		}
	} else {
		for _, c := range cfg.Concurrency {
			plans = append(plans, plan{c, 0})
		}
	}
	for _, p := range plans {
		lv, err := runLevel(ctx, &cfg, p.conc, p.rate)
		if errors.Is(err, ErrInterrupted) {
			res.Levels = append(res.Levels, lv)
			return res, err
		}
		if err != nil {
			return res, err
		}
		res.Levels = append(res.Levels, lv)
	}
	return res, nil
}

// ErrInterrupted is returned by Run and Execute when the context ended
// (Ctrl-C, SIGTERM) during a level. Run's result then holds the finished
// levels and the interrupted one, marked Partial; Execute has printed and
// written them.
var ErrInterrupted = errors.New("benchmark interrupted: the table and files hold the levels finished and the partial one")

// worker is one closed-loop client (or one open-loop sender) and what it saw.
type worker struct {
	mu      sync.Mutex
	samples []sample
	// observed: every sample of this worker that ends before this time (ns
	// since the level's base) is already recorded.
	observed  atomic.Int64
	sent, oks int
}

func (w *worker) record(s sample) {
	w.mu.Lock()
	w.samples = append(w.samples, s)
	w.sent++
	if s.kind == "" {
		w.oks++
	}
	w.mu.Unlock()
}

// level holds the shared state of one level while it runs.
type level struct {
	cfg     *Config
	base    time.Time
	winFrom int64        // window opens (ns since base)
	stopAt  atomic.Int64 // workers send nothing that would start at or after this
	workers []*worker
	live    liveCounters
}

func (l *level) since() int64 { return int64(l.cfg.Clock.Now().Sub(l.base)) }

// do sends request i and records its outcome; latency runs from ref (the
// actual send time in closed loop, the intended one in open loop).
func (l *level) do(ctx context.Context, w *worker, i int, ref int64, winTo int64) {
	rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	err := l.cfg.Client.Do(rctx, i)
	cancel()
	if err != nil && ctx.Err() != nil {
		// The run was interrupted while this request was out: it was
		// abandoned, not answered, and counts neither way. Deciding here
		// rather than by the cut's timestamp, which another goroutine
		// stores, keeps a cancelled request from ever counting as an error.
		return
	}
	end := l.since()
	s := sample{end: end, latency: end - ref}
	if err != nil {
		s.kind = Classify(err)
	}
	w.record(s)
	l.live.add(s, l.winFrom, winTo)
}

func runLevel(ctx context.Context, cfg *Config, conc int, rate float64) (Level, error) {
	lv := Level{Concurrency: conc, Rate: rate}
	var before *ServerSnapshot
	if cfg.Stats != nil {
		s, err := cfg.Stats.Snapshot(ctx)
		if err != nil {
			cfg.Logger.Debug("server statistics unavailable", "err", err)
		} else {
			before = s
		}
	}
	l := &level{cfg: cfg, base: cfg.Clock.Now(), winFrom: int64(cfg.Warmup)}
	l.workers = make([]*worker, conc)
	for i := range l.workers {
		// About 64k samples pre-sized across the level; slices grow beyond.
		l.workers[i] = &worker{samples: make([]sample, 0, max(64, 65536/conc))}
	}
	winTo := l.winFrom + int64(cfg.Duration)
	if cfg.Stable {
		winTo = math.MaxInt64
	}
	l.stopAt.Store(winTo)
	stopProgress := cfg.Progress.start(l, conc, rate)
	// The moment of an interruption: samples that end after it are the
	// requests the interruption cancelled, not the server's answers.
	var cut atomic.Int64
	stopCut := context.AfterFunc(ctx, func() { cut.Store(l.since()) })
	defer stopCut()

	var from, to int64
	var err error
	switch {
	case rate > 0:
		err = l.openLoop(ctx, conc, rate)
		from, to = l.winFrom, winTo
	case cfg.Stable:
		from, to, err = l.stableLoop(ctx, conc, &lv)
	default:
		l.closedLoop(ctx, conc)
		from, to = l.winFrom, winTo
	}
	stopProgress()
	if err == nil {
		err = ctx.Err()
	}
	if ctx.Err() != nil {
		// Interrupted: summarise the window so far, marked partial.
		lv.Partial = true
		from, to = l.winFrom, max(l.winFrom, cut.Load())
		if to == l.winFrom && cut.Load() == 0 {
			to = max(l.winFrom, l.since())
		}
		err = ErrInterrupted
	} else if err != nil {
		return lv, err
	}

	all := make([][]sample, len(l.workers))
	for i, w := range l.workers {
		all[i] = w.samples
		lv.Sent += w.sent
		lv.Succeeded += w.oks
	}
	ws := collect(all, from, to)
	lv.Requests = len(ws.latencies)
	lv.Errors = ws.errorCount()
	if lv.Errors > 0 {
		lv.ErrorsByKind = ws.errors
	}
	lv.DurationS = ws.seconds()
	lv.Throughput = ws.throughput()
	lv.TextsPerSecond = lv.Throughput * float64(cfg.TextsPerRequest)
	lv.Latency = Summarize(ws.latencies)
	if before != nil && !lv.Partial {
		if after, serr := cfg.Stats.Snapshot(ctx); serr != nil {
			cfg.Logger.Debug("server statistics unavailable", "err", serr)
		} else {
			lv.Server = after.Sub(before)
		}
	}
	if lv.Partial {
		return lv, err
	}
	cfg.Progress.done(lv)
	return lv, nil
}

// closedLoop runs conc workers, each sending its next request when the
// previous one returns, until the stop time.
func (l *level) closedLoop(ctx context.Context, conc int) {
	var wg sync.WaitGroup
	for wi, w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.observed.Store(math.MaxInt64)
			for i := wi; ; i += conc {
				start := l.since()
				if start >= l.stopAt.Load() || ctx.Err() != nil {
					return
				}
				w.observed.Store(start)
				l.do(ctx, w, i, start, l.stopAt.Load())
			}
		}()
	}
	wg.Wait()
}

// stableLoop runs the closed loop in consecutive windows until the last
// three agree, then stops the workers and returns the last three windows'
// span.
func (l *level) stableLoop(ctx context.Context, conc int, lv *Level) (from, to int64, err error) {
	done := make(chan struct{})
	go func() { l.closedLoop(ctx, conc); close(done) }()
	defer func() { l.stopAt.Store(0); <-done }()
	win := int64(l.cfg.Window)
	var tput, lat []float64
	stable := false
	k := 0
	for ; k < l.cfg.MaxWindows && !stable; k++ {
		end := l.winFrom + int64(k+1)*win
		if err := l.cfg.Clock.Sleep(ctx, time.Duration(end-l.since())); err != nil {
			return 0, 0, err
		}
		if err := l.waitObserved(ctx, end); err != nil {
			return 0, 0, err
		}
		ws := l.snapshot(end-win, end)
		tput = append(tput, ws.throughput())
		lat = append(lat, Summarize(ws.latencies).Mean)
		n := len(tput)
		if n >= 3 {
			stable = stableWithin(tput[n-3:], l.cfg.Threshold) && stableWithin(lat[n-3:], l.cfg.Threshold)
		}
	}
	if !stable {
		l.cfg.Logger.Warn("measurement did not stabilise", "concurrency", conc, "windows", k)
	}
	lv.Windows, lv.Stable = k, &stable
	return l.winFrom + int64(k-3)*win, l.winFrom + int64(k)*win, nil
}

// waitObserved waits until every worker has recorded all samples ending
// before t.
func (l *level) waitObserved(ctx context.Context, t int64) error {
	for {
		ready := true
		for _, w := range l.workers {
			if w.observed.Load() < t {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// snapshot collects [from, to) while the workers keep running.
func (l *level) snapshot(from, to int64) windowStats {
	all := make([][]sample, len(l.workers))
	for i, w := range l.workers {
		w.mu.Lock()
		all[i] = w.samples[:len(w.samples):len(w.samples)]
		w.mu.Unlock()
	}
	return collect(all, from, to)
}

// openLoop sends requests at Poisson arrival times at the given rate, with
// at most conc in flight; a request that waits for a free sender still has
// its latency measured from its intended send time, so a slow server cannot
// hide its queueing (no coordinated omission).
func (l *level) openLoop(ctx context.Context, conc int, rate float64) error {
	queue := make(chan int64, 1<<16)
	var wg sync.WaitGroup
	for wi, w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := wi
			for intended := range queue {
				if ctx.Err() != nil {
					continue
				}
				l.do(ctx, w, i, intended, l.stopAt.Load())
				i += conc
			}
		}()
	}
	overflow := &worker{}
	l.workers = append(l.workers, overflow)
	arrivals := NewArrivals(rate, l.cfg.Seed)
	var err error
	stop := l.stopAt.Load()
	for next := arrivals.Next(); next < stop; next += arrivals.Next() {
		if err = l.cfg.Clock.Sleep(ctx, time.Duration(next-l.since())); err != nil {
			break
		}
		select {
		case queue <- next:
		default:
			// The client cannot keep up: count it rather than block the
			// arrival process.
			overflow.record(sample{end: next, kind: "client_overflow"})
		}
	}
	close(queue)
	wg.Wait()
	return err
}

// Arrivals generates exponentially distributed gaps (a Poisson process).
type Arrivals struct {
	rate float64
	rng  *rand.Rand
}

// NewArrivals returns a reproducible arrival process at rate per second.
func NewArrivals(rate float64, seed uint64) *Arrivals {
	return &Arrivals{rate: rate, rng: rand.New(rand.NewPCG(seed, 0x6d3365))}
}

// Next returns the gap to the next arrival in nanoseconds (at least 1).
func (a *Arrivals) Next() int64 {
	return max(1, int64(a.rng.ExpFloat64()/a.rate*float64(time.Second)))
}
