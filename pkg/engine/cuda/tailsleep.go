package cuda

import "time"

// tailPollEvery is how long the thread polling the end of a batch sleeps
// between polls: a poll (cuEventQuery, the clock) and a sleep cost a
// couple of µs of CPU, against the whole interval when spinning, and the
// end is seen at most this late.
const tailPollEvery = 4 * time.Microsecond

// tailSlackNs is the timer slack the polling thread sleeps with: Linux
// lets a normal thread's sleep run 50 µs late by default (prctl(2),
// PR_SET_TIMERSLACK), far more than a poll's interval.
const tailSlackNs = 1000
