package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a Go CPU profile of the whole process to the file
// M3ECTL_CPUPROFILE names (unset: nothing), so that a server under a
// benchmark on the GPU host can be profiled with no extra port or flag; the
// returned function stops it and closes the file, and main calls it before
// exiting (serve returns from its drain on SIGINT/SIGTERM).
func startCPUProfile() func() {
	path := os.Getenv("M3ECTL_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "m3ectl: M3ECTL_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "m3ectl: M3ECTL_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "m3ectl: M3ECTL_CPUPROFILE: %v\n", err)
		}
	}
}
