package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/bench"
)

func init() { register(newBenchCmd) }

func newBenchCmd() *cobra.Command {
	o := bench.Options{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark an embedding server under concurrency (KServe v2 HTTP/gRPC, OpenAI)",
		Long: `Runs the article's concurrency benchmark the way perf_analyzer does: for each
level, N closed-loop clients (or Poisson arrivals with --rate) send requests
for --duration after a --warmup; only requests completing inside the window
count. Prints infer/s, p50/p90/p95/p99 latency, errors by kind and, where the
server offers Triton statistics, the mean batch size and queue/compute time per
request. Works against m3ectl serve, Triton and OpenAI-compatible servers.`,
		Example: `  # the article's sweep against m3ectl serve or Triton
  m3ectl bench --url http://127.0.0.1:8000 --model m3e-base-trt -c 1,2,4,16,32 --duration 60s

  # gRPC, JSON/CSV/chart output, compared with an earlier run, gated for CI
  m3ectl bench --protocol kserve-grpc --url 127.0.0.1:8001 --model m3e-base-trt -c 32 --duration 20s \
    --json trt.json --csv trt.csv --chart trt-vs-pt.svg --compare pytorch.json --label tensorrt \
    --assert "p95<50ms,throughput>200,errors=0"

  # open loop at 200 requests/s; the client's own ceiling
  m3ectl bench --model m3e-base-trt --rate 200 --duration 30s
  m3ectl bench --self-test -c 1,16,64 --duration 5s

  # redraw two saved runs into one chart, or gate CI on a saved run
  m3ectl bench --from trt.json --compare pytorch.json --chart trt-vs-pt.png
  m3ectl bench --from trt.json --assert "p95<50ms"`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = &bench.Progress{W: os.Stderr, TTY: isTerminal(os.Stderr)}
			return bench.Execute(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "", "server URL (default http://127.0.0.1:8000; 127.0.0.1:8001 for kserve-grpc)")
	f.StringVar(&o.Model, "model", "", "model name (default: the server's only ready model)")
	f.StringVar(&o.Version, "model-version", "", "model version (default: the server's choice)")
	f.StringVar(&o.Protocol, "protocol", bench.ProtoKServeHTTP, "kserve-http, kserve-grpc or openai")
	f.StringVarP(&o.Concurrency, "concurrency", "c", "1,2,4,16,32", "concurrency levels, e.g. 32 or 1,2,4,16,32")
	f.StringVar(&o.Rate, "rate", "", "open loop: Poisson arrivals at these rates (req/s), e.g. 100,200; -c caps requests in flight")
	f.DurationVar(&o.Duration, "duration", 60*time.Second, "measurement window per level")
	f.DurationVar(&o.Warmup, "warmup", 5*time.Second, "warm-up before the window opens (not counted)")
	f.BoolVar(&o.Stable, "stable", false, "repeat --window windows until three in a row agree within 10% on throughput and mean latency (perf_analyzer's rule; --duration is then unused)")
	f.DurationVar(&o.Window, "window", 5*time.Second, "window length with --stable")
	f.IntVar(&o.MaxWindows, "max-windows", 10, "most windows per level with --stable")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "per-request timeout (counted as a timeout error)")
	f.IntVar(&o.TextsPerRequest, "texts-per-request", 1, "texts in each request (rows of the [N,1] tensor)")
	f.StringVar(&o.Data, "data", "", "texts file: one per line, or JSON lines {\"text\": ...} (default: built-in Chinese/mixed set)")
	f.StringVar(&o.InputName, "input-name", "text", "KServe input tensor name")
	f.StringVar(&o.Label, "label", "", "name of this run in charts and comparisons")
	f.StringVar(&o.JSON, "json", "", "write the result as JSON to this file (\"-\": stdout instead of the table)")
	f.StringVar(&o.CSV, "csv", "", "write one CSV row per level to this file")
	f.StringVar(&o.Chart, "chart", "", "draw throughput and p95 against concurrency to this .svg or .png")
	f.StringSliceVar(&o.Compare, "compare", nil, "earlier --json results to overlay on the chart (repeatable)")
	f.StringVar(&o.Assert, "assert", "", "fail unless every level meets these, e.g. \"p95<50ms,throughput>200,errors=0\"")
	f.BoolVar(&o.BinaryOutput, "binary-output", false, "kserve-http: ask for the embeddings as Triton binary tensor data instead of JSON numbers")
	f.BoolVar(&o.SelfTest, "self-test", false, "measure only the client's own ceiling against a canned in-process server")
	f.StringVar(&o.From, "from", "", "report a saved --json result (table, CSV, chart, --assert) instead of running")
	f.BoolVar(&o.Ceiling, "ceiling", false, "also measure the client's ceiling (3 s) before the run and report it")
	f.BoolVar(&o.NoStats, "no-server-stats", false, "do not read the server's statistics endpoint")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the open-loop arrival process")
	return cmd
}

// isTerminal reports whether f is a character device (a terminal), so the
// progress line can be rewritten in place.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
