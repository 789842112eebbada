package bench

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// liveCounters are updated by the workers for the progress line only; the
// result is computed from the recorded samples.
type liveCounters struct {
	ok, errs, latSum atomic.Int64
}

func (c *liveCounters) add(s sample, from, to int64) {
	if s.end < from || s.end >= to {
		return
	}
	if s.kind != "" {
		c.errs.Add(1)
		return
	}
	c.ok.Add(1)
	c.latSum.Add(s.latency)
}

// Progress writes a live line per level: rewritten in place with \r on a
// terminal, a plain line every Interval otherwise. Its time is the wall
// clock; it is cosmetic and never feeds the result.
type Progress struct {
	W   io.Writer
	TTY bool
	// Interval between updates (default 500 ms on a terminal, 10 s otherwise).
	Interval time.Duration
	mu       sync.Mutex
}

// start begins updates for a level and returns the function that stops them.
func (p *Progress) start(l *level, conc int, rate float64) func() {
	if p == nil || p.W == nil {
		return func() {}
	}
	every := p.Interval
	if every <= 0 {
		every = 10 * time.Second
		if p.TTY {
			every = 500 * time.Millisecond
		}
	}
	name := levelName(conc, rate)
	begin := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.line(name, l, time.Since(begin))
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func (p *Progress) line(name string, l *level, el time.Duration) {
	warm := time.Duration(l.winFrom)
	var s string
	if el < warm {
		s = fmt.Sprintf("%s  warm-up %.1fs/%s", name, el.Seconds(), warm)
	} else {
		in := el - warm
		ok, errs := l.live.ok.Load(), l.live.errs.Load()
		mean := 0.0
		if ok > 0 {
			mean = float64(l.live.latSum.Load()) / float64(ok) / 1e6
		}
		total := ""
		if l.cfg.Duration > 0 && !l.cfg.Stable {
			total = "/" + l.cfg.Duration.String()
		}
		rate := "-"
		if in >= 200*time.Millisecond {
			rate = fmt.Sprintf("%.1f", float64(ok)/in.Seconds())
		}
		s = fmt.Sprintf("%s  %.1fs%s  %s infer/s  mean %.2fms  errors %d",
			name, in.Seconds(), total, rate, mean, errs)
	}
	p.write(s, false)
}

// done prints the level's final line.
func (p *Progress) done(lv Level) {
	if p == nil || p.W == nil {
		return
	}
	p.write(fmt.Sprintf("%s  done: %.1f infer/s  p95 %.2fms  errors %d",
		levelName(lv.Concurrency, lv.Rate), lv.Throughput, lv.Latency.P95, lv.Errors), true)
}

func (p *Progress) write(s string, final bool) {
	if p == nil || p.W == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.TTY && final:
		fmt.Fprintf(p.W, "\r\033[K%s\n", s)
	case p.TTY:
		fmt.Fprintf(p.W, "\r\033[K%s", s)
	default:
		fmt.Fprintln(p.W, s)
	}
}

func levelName(conc int, rate float64) string {
	if rate > 0 {
		return fmt.Sprintf("rate=%g/s (max in flight %d)", rate, conc)
	}
	return fmt.Sprintf("c=%d", conc)
}
