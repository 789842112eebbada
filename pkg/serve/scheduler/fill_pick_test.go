package scheduler

import (
	"testing"
	"time"
)

// drive feeds a picker batches of rows ending every d, d from cycle(lock):
// the rows per second each cycle answers. It returns which cycle was in
// force at each batch.
func drive(p *picker, now *time.Time, n, rows int, cycle func(lock bool) time.Duration) []bool {
	var seen []bool
	for range n {
		seen = append(seen, p.lock)
		*now = now.Add(cycle(p.lock))
		p.batch(*now, rows, false)
	}
	return seen
}

func TestPickerChoosesTheFasterCycle(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	for _, c := range []struct {
		name        string
		lock, split time.Duration // per batch of 32 rows
		want        bool
	}{
		{"lock-step 10% faster", ms(0.90), ms(1.0), true},
		{"lock-step 1% faster: a tie, split", ms(0.99), ms(1.0), false},
		{"split faster", ms(1.2), ms(1.0), false},
		{"equal", ms(1.0), ms(1.0), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &picker{}
			now := time.Unix(1000, 0)
			cycle := func(lock bool) time.Duration {
				if lock {
					return c.lock
				}
				return c.split
			}
			seen := drive(p, &now, 1, 32, cycle) // starts the exploration
			for p.left > 0 && len(seen) < 1000 {
				seen = append(seen, drive(p, &now, 1, 32, cycle)...)
			}
			if p.left != 0 || p.best != c.want || p.lock != c.want {
				t.Fatalf("after %d batches: exploring %d, chosen %v, in force %v; want %v", len(seen), p.left, p.best, p.lock, c.want)
			}
			var both [2]bool
			for _, l := range seen {
				both[idx(l)] = true
			}
			if !both[0] || !both[1] {
				t.Fatalf("the exploration ran only one cycle: %v", both)
			}
			for i, want := range []float64{32 / c.split.Seconds(), 32 / c.lock.Seconds()} {
				if got := p.measured[i]; got < want*0.999 || got > want*1.001 {
					t.Errorf("measured[%d] = %.0f rows/s, want %.0f", i, got, want)
				}
			}
			// The choice holds until hold has passed, then it is measured again.
			held := drive(p, &now, int(defaultPick.hold/cycle(c.want))-1, 32, cycle)
			for _, l := range held {
				if l != c.want || p.left != 0 {
					t.Fatal("the cycle changed while the choice held")
				}
			}
			drive(p, &now, 2, 32, cycle)
			if p.left == 0 {
				t.Error("no new exploration after hold")
			}
		})
	}
}

// The winner can change with the load: the next exploration follows it.
func TestPickerFollowsTheLoad(t *testing.T) {
	p := &picker{}
	now := time.Unix(1000, 0)
	fast := func(yes bool) func(bool) time.Duration {
		return func(lock bool) time.Duration {
			if lock == yes {
				return 800 * time.Microsecond
			}
			return time.Millisecond
		}
	}
	drive(p, &now, 300, 32, fast(true))
	if !p.best {
		t.Fatal("lock-step faster: not chosen")
	}
	drive(p, &now, 3000, 32, fast(false))
	if p.best || p.lock {
		t.Fatal("split faster since: lock-step kept")
	}
}

// Cold batches start a window again, and so does a pause inside a window;
// the third pause in one exploration ends it on split (light traffic).
func TestPickerColdAndStale(t *testing.T) {
	p := &picker{}
	now := time.Unix(1000, 0)
	p.batch(now, 32, false) // starts the exploration
	for range 50 {
		now = now.Add(time.Millisecond)
		p.batch(now, 32, true)
	}
	if p.tops != [2]float64{} || p.n != 0 {
		t.Fatalf("cold batches counted: windows %v, batches %d", p.tops, p.n)
	}
	for pause := 1; pause <= 3; pause++ {
		for range 5 {
			now = now.Add(time.Millisecond)
			p.batch(now, 32, false)
		}
		now = now.Add(time.Second)
		ended := p.batch(now, 32, false)
		if ended != (pause == 3) || p.tops != [2]float64{} {
			t.Fatalf("pause %d: exploration ended %v, windows %v", pause, ended, p.tops)
		}
	}
	if p.best || p.lock || p.left != 0 || p.measured != [2]float64{} {
		t.Errorf("after three pauses: exploring %d, chosen %v, rates %v", p.left, p.best, p.measured)
	}
	if h := p.until.Sub(now); h != defaultPick.hold {
		t.Errorf("an exploration of over 3 s of pauses holds %v, want %v: pauses are not slow batches", h, defaultPick.hold)
	}
}

// A choice won clearly again and again holds longer each time (up to eight
// holds); a close or changed one holds one hold; and an exploration that
// took long (slow batches, as on a CPU) holds at least eight times its
// length.
func TestPickerHolds(t *testing.T) {
	explore := func(p *picker, now *time.Time, cycle func(bool) time.Duration) time.Duration {
		for p.left == 0 { // wait out the hold
			drive(p, now, 1, 32, cycle)
		}
		for p.left > 0 {
			drive(p, now, 1, 32, cycle)
		}
		return p.until.Sub(*now)
	}
	clear := func(lock bool) time.Duration {
		if lock {
			return 800 * time.Microsecond
		}
		return time.Millisecond
	}
	p := &picker{}
	now := time.Unix(1000, 0)
	var holds []time.Duration
	for range 6 {
		holds = append(holds, explore(p, &now, clear).Round(100*time.Millisecond))
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if holds[i] != want[i]*time.Second {
			t.Fatalf("holds %v, want %v seconds", holds, want)
		}
	}
	close := func(lock bool) time.Duration {
		if lock {
			return 970 * time.Microsecond // 3% ahead: chosen, not clearly
		}
		return time.Millisecond
	}
	if h := explore(p, &now, close).Round(100 * time.Millisecond); !p.best || h != time.Second {
		t.Errorf("a close win: chosen %v, held %v; want chosen, 1s", p.best, h)
	}
	slow := &picker{}
	h := explore(slow, &now, func(bool) time.Duration { return 100 * time.Millisecond })
	if h < 8*4*(3+8)*100*time.Millisecond-time.Second {
		t.Errorf("100 ms batches: the choice held %v, want at least 8× the exploration's ~4.4s", h)
	}
}
