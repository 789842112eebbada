package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// commands holds the constructors of every sub-command; each command's file
// registers itself in init so that files can be added without touching this one.
var commands []func() *cobra.Command

func register(c func() *cobra.Command) { commands = append(commands, c) }

func newRootCmd() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "m3ectl",
		Short: "Deploy BERT sentence-embedding models: inspect, build-engine, verify-engine, repo, serve, bench",
		Long: `m3ectl takes a BERT sentence-embedding model (reference: m3e-base) through its
whole deployment lifecycle: inspect the ONNX graph, build a TensorRT engine with
trtexec, verify it, write a Triton model repository, serve it (KServe v2 HTTP/gRPC
and OpenAI-compatible embeddings) and benchmark it under concurrency.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}
