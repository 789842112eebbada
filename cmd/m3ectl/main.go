// Command m3ectl takes a BERT sentence-embedding model from ONNX to a served,
// benchmarked endpoint: inspect, build-engine, verify-engine, repo, serve, bench.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// secondSignal ends the process at once on a second SIGTERM or Ctrl-C, for
// an operator who will not wait for the drain the first one started.
func secondSignal(first context.Context) {
	<-first.Done()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	sig := <-ch
	fmt.Fprintf(os.Stderr, "m3ectl: second signal (%v): exiting without waiting for the drain\n", sig)
	os.Exit(2)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go secondSignal(ctx)
	stopProfile := startCPUProfile()
	err := newRootCmd().ExecuteContext(ctx)
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "m3ectl: "+err.Error())
		os.Exit(1)
	}
}
