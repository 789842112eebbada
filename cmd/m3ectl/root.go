package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/buildinfo"
)

// commands holds the constructors of every sub-command; each command's file
// registers itself in init so that files can be added without touching this one.
var commands []func() *cobra.Command

func register(c func() *cobra.Command) { commands = append(commands, c) }

func newRootCmd() *cobra.Command {
	var verbose bool
	var logFormat string
	root := &cobra.Command{
		Use:   "m3ectl",
		Short: "Deploy BERT sentence-embedding models: inspect, build-engine, verify-engine, repo, serve, bench",
		Long: `m3ectl takes a BERT sentence-embedding model (reference: m3e-base) through its
whole deployment lifecycle: inspect the ONNX graph, build a TensorRT engine with
trtexec, verify it, write a Triton model repository, serve it (KServe v2 HTTP/gRPC,
OpenAI-compatible embeddings and text-embeddings-inference's API) and benchmark it
under concurrency.`,
		Version:       buildinfo.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			h, err := logHandler(cmd.ErrOrStderr(), logFormat, verbose)
			if err != nil {
				return err
			}
			slog.SetDefault(slog.New(h))
			return nil
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	root.PersistentFlags().StringVar(&logFormat, "log-format", "text", "log format on stderr: text, or json (one slog JSON object a line, for log collectors)")
	// --version prints what `m3ectl version` prints; the template function
	// runs only when --version is given, so no library loads otherwise.
	cobra.AddTemplateFunc("versionReport", func() string {
		var b strings.Builder
		readVersion("").write(&b)
		return b.String()
	})
	root.SetVersionTemplate("{{versionReport}}")
	root.SetFlagErrorFunc(flagError)
	root.SuggestionsMinimumDistance = 2
	for _, c := range commands {
		sub := c()
		sub.SetFlagErrorFunc(flagError)
		root.AddCommand(sub)
	}
	return root
}

// logHandler builds the slog handler --log-format names.
func logHandler(w io.Writer, format string, verbose bool) (slog.Handler, error) {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
