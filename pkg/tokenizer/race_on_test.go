//go:build race

package tokenizer

// raceOn says the race detector is on: exhaustive sweeps, which have no
// concurrency to check, then run on a sample to keep the suite fast.
const raceOn = true
