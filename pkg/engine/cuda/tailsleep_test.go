package cuda

import (
	"testing"
	"time"
)

// TestSleepPreciseSleeps checks the poll's sleep lasts at least what was
// asked, and ends (a sleep that did not would hang the batch's wait).
func TestSleepPreciseSleeps(t *testing.T) {
	lockThread()
	defer unlockThread()
	for _, d := range []time.Duration{tailPollEvery, 300 * time.Microsecond} {
		start := time.Now()
		sleepPrecise(d)
		if got := time.Since(start); got < d {
			t.Fatalf("slept %v, want at least %v", got, d)
		}
	}
}
