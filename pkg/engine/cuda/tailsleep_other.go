//go:build !linux

package cuda

import "time"

// sleepPrecise sleeps for d (Go's timer, without Linux's timer slack
// control).
func sleepPrecise(d time.Duration) { time.Sleep(d) }
