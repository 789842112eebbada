package cuda

import (
	"syscall"
	"time"
)

// prSetTimerSlack is PR_SET_TIMERSLACK (linux/prctl.h).
const prSetTimerSlack = 29

// sleepPrecise sleeps the calling OS thread (locked by the caller) for d
// with a tight timer slack, so that it wakes within a few µs of d rather
// than up to 50 µs late.
func sleepPrecise(d time.Duration) {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, tailSlackNs, 0)
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
