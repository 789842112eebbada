package bulk

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress reports a run on w: on a terminal, one bar redrawn in place
// with the rate and the time left; otherwise a line every interval, so
// logs of a batch job stay readable.
type Progress struct {
	w        io.Writer
	terminal bool
	interval time.Duration
	last     time.Duration
	drawn    bool
}

// NewProgress reports on w; terminal says whether w is one.
func NewProgress(w io.Writer, terminal bool) *Progress {
	return &Progress{w: w, terminal: terminal, interval: 5 * time.Second}
}

// Update is an Options.Progress.
func (p *Progress) Update(s Stats) {
	if p.terminal {
		if s.Elapsed-p.last < 100*time.Millisecond && p.drawn {
			return
		}
		p.last, p.drawn = s.Elapsed, true
		fmt.Fprintf(p.w, "\r%s", Line(s, 30))
		return
	}
	if s.Elapsed-p.last < p.interval {
		return
	}
	p.last = s.Elapsed
	fmt.Fprintln(p.w, Line(s, 0))
}

// Done ends the bar with the final figures.
func (p *Progress) Done(s Stats) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\n", Line(s, 30))
		return
	}
	fmt.Fprintln(p.w, Line(s, 0))
}

// Line renders s: a bar of width cells when width > 0 and the input's
// size is known, then texts, rate and estimated time left.
func Line(s Stats, width int) string {
	var b strings.Builder
	frac := -1.0
	if s.BytesTotal > 0 {
		frac = min(float64(s.BytesDone)/float64(s.BytesTotal), 1)
	}
	if width > 0 && frac >= 0 {
		full := int(frac * float64(width))
		fmt.Fprintf(&b, "[%s%s] %3.0f%% ", strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*frac)
	} else if frac >= 0 {
		fmt.Fprintf(&b, "%.0f%% ", 100*frac)
	}
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Texts) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(&b, "%d texts, %.0f texts/s, %s", s.Texts, rate, s.Elapsed.Round(100*time.Millisecond))
	if frac > 0 && frac < 1 {
		left := time.Duration(float64(s.Elapsed) * (1 - frac) / frac)
		fmt.Fprintf(&b, ", ETA %s", left.Round(time.Second))
	}
	return b.String()
}
