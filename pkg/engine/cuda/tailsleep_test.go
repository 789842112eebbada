package cuda

import (
	"testing"
	"time"
)

// TestTailTimesLearnsAndBacksOff checks that the sleep before polling
// follows the tails seen, shrinks when an end was already there, and
// stays zero for tails too short to sleep through.
func TestTailTimesLearnsAndBacksOff(t *testing.T) {
	us := time.Microsecond
	bk, other := bucket{T: 640}, bucket{T: 2048}
	var tt tailTimes
	if d := tt.sleepFor(bk); d != 0 {
		t.Fatalf("unseen shape sleeps %v, want 0", d)
	}
	tt.observe(bk, 200*us, false)
	if d := tt.sleepFor(bk); d != 200*us-tailMargin {
		t.Fatalf("after one 200µs tail: sleep %v, want %v", d, 200*us-tailMargin)
	}
	if d := tt.sleepFor(other); d != 0 {
		t.Fatalf("another shape sleeps %v, want 0", d)
	}
	tt.observe(bk, 300*us, false) // 200 + (300-200)/4
	if d := tt.sleepFor(bk); d != 225*us-tailMargin {
		t.Fatalf("after a 300µs tail: sleep %v, want %v", d, 225*us-tailMargin)
	}
	for range 40 { // the end keeps being there at the first poll
		tt.observe(bk, 225*us, true)
	}
	if d := tt.sleepFor(bk); d != 0 {
		t.Fatalf("after 40 early sightings: sleep %v, want 0 (tail below %v)", d, 2*tailMargin)
	}
	tt.observe(other, 40*us, false)
	if d := tt.sleepFor(other); d != 0 {
		t.Fatalf("a 40µs tail sleeps %v, want 0", d)
	}
}

// TestSleepPreciseSleeps checks the sleep lasts at least what was asked.
func TestSleepPreciseSleeps(t *testing.T) {
	lockThread()
	defer unlockThread()
	start := time.Now()
	sleepPrecise(300 * time.Microsecond)
	if d := time.Since(start); d < 300*time.Microsecond {
		t.Fatalf("slept %v, want at least 300µs", d)
	}
}
