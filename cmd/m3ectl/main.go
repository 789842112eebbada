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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "m3ectl: "+err.Error())
		os.Exit(1)
	}
}
