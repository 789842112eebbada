package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/serve"
	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

func init() { register(newServeCmd) }

// apiKeyEnv is the environment variable --api-key defaults to, so that the
// key need not appear in the process list.
const apiKeyEnv = "M3ECTL_API_KEY"

type serveFlags struct {
	repository, controlMode string
	loadModels              []string
	pollSecs                int
	model, name             string
	batching                string
	host                    string
	httpPort, grpcPort      int
	metricsPort             int
	engine                  string
	threads, maxBatchTokens int
	ortLib                  string
	maxRequestBytes         int64
	apiKey                  string
	truncate, noTruncate    bool
	maxLength               int
	drainTimeout            time.Duration
	shutdownDelay           time.Duration
	metricsNoAuth           bool
	maxInflightBytes        int64
	maxRequestTexts         int
	memoryLimit             int64
	maxConnections          int
	maxStreams              uint32
	pprofAddr               string
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve (--model-repository DIR | --model PATH)",
		Short: "Serve embedding models over KServe v2 HTTP/gRPC (Triton-compatible) and the OpenAI embeddings API",
		Long: `serve runs the embedded, Triton-compatible embedding server: a model
repository laid out as Triton lays it out (DIR/<name>/config.pbtxt plus numbered
version folders), or a single model with --model. KServe v2 HTTP on --http-port,
gRPC on --grpc-port, Prometheus metrics on --metrics-port; OpenAI-compatible
POST /v1/embeddings on the HTTP port.

SIGTERM or Ctrl-C turns readiness to 503 at once, keeps serving for
--shutdown-delay, then answers new requests 503 while in-flight ones finish;
the exit status is 0 when all finished within --drain-timeout, 1 when the
deadline answered pending ones 503. A second signal exits at once (status 2).`,
		Example: `  # serve the bundled model, then ask it as the article's client does
  m3ectl serve --model testdata/m3e-tiny/hf --name m3e
  curl -s localhost:8000/v2/models/m3e/infer -d '{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES","data":["酒店很好"]}]}'

  # a Triton model repository, models loaded on demand
  m3ectl serve --model-repository model_repository --model-control-mode explicit --load-model m3e-base

  # the same repository on a real NVIDIA Triton server
  m3ectl serve --model-repository model_repository --triton`,
		Args: cobra.NoArgs,
	}
	triton := addTritonFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkServeFlags(&f); err != nil {
			return err
		}
		if triton.enabled() {
			return triton.run(cmd.Context(), f.repository, f.loadModels, f.httpPort, f.grpcPort, f.metricsPort)
		}
		return runServe(cmd, &f)
	}
	fl := cmd.Flags()
	fl.StringVar(&f.repository, "model-repository", "", "Triton model repository `DIR` to serve")
	fl.StringVar(&f.controlMode, "model-control-mode", "none", "model control mode: none (load all), explicit (load/unload API), poll (rescan the repository)")
	fl.StringArrayVar(&f.loadModels, "load-model", nil, "`NAME` of a model to load at startup in explicit mode (repeatable)")
	fl.IntVar(&f.pollSecs, "repository-poll-secs", 15, "seconds between repository scans in poll mode")
	fl.StringVar(&f.model, "model", "", "serve one model `PATH` (an ONNX file or a model folder) instead of a repository")
	fl.StringVar(&f.batching, "batching", "", "batching policy of --model: continuous (default: an idle instance takes what is queued at once) or triton (wait up to max_queue_delay to fill a batch); a repository's models set parameter BATCHING_POLICY")
	fl.StringVar(&f.name, "name", "", "model name for --model (default: the file or folder name)")
	fl.StringVar(&f.host, "host", "0.0.0.0", "address to listen on")
	fl.IntVar(&f.httpPort, "http-port", 8000, "KServe v2 HTTP and OpenAI port")
	fl.IntVar(&f.grpcPort, "grpc-port", 8001, "KServe v2 gRPC port (-1: off)")
	fl.IntVar(&f.metricsPort, "metrics-port", 8002, "Prometheus metrics port (-1: off)")
	fl.StringVar(&f.engine, "engine", "cpu", "inference backend: cpu (ONNX Runtime), cuda, or auto")
	fl.IntVar(&f.threads, "threads", 0, "intra-op threads per model, split across instances (0: all cores)")
	fl.StringVar(&f.ortLib, "ort-lib", "", "path of libonnxruntime.so (default: $ONNXRUNTIME_LIB, then $XDG_DATA_HOME/m3ectl/onnxruntime, then third_party/onnxruntime, then system paths)")
	fl.IntVar(&f.maxBatchTokens, "max-batch-tokens", 0, "token budget of one dynamic batch (0: sized for the model's window)")
	fl.Int64Var(&f.maxRequestBytes, "max-request-bytes", serve.DefaultMaxRequestBytes, "largest request body accepted (larger: 413)")
	fl.Int64Var(&f.maxInflightBytes, "max-inflight-bytes", 0, "request data in flight across all requests, each weighing 4x its body; beyond it requests get 503 + Retry-After (0: 4 x --max-request-bytes)")
	fl.IntVar(&f.maxRequestTexts, "max-request-texts", 1024, "most texts in one KServe request to a model with max_batch_size 0 (otherwise max_batch_size bounds it)")
	fl.Int64Var(&f.memoryLimit, "memory-limit", 0, "soft limit of the Go heap in bytes, as GOMEMLIMIT (0: --max-inflight-bytes + 128 MiB; -1: none; GOMEMLIMIT wins)")
	fl.IntVar(&f.maxConnections, "max-connections", 0, "connections each listener holds open; past it new ones are closed, with a log line (0: 4096, less under a low descriptor limit; -1: no cap)")
	fl.Uint32Var(&f.maxStreams, "grpc-max-concurrent-streams", 1024, "concurrent RPCs on one gRPC connection")
	fl.StringVar(&f.apiKey, "api-key", "", "bearer token required on every endpoint but health (default $"+apiKeyEnv+")")
	fl.BoolVar(&f.truncate, "truncate", true, "truncate texts longer than --max-length tokens")
	fl.BoolVar(&f.noTruncate, "no-truncate", false, "reject texts longer than --max-length tokens (400) instead of truncating")
	fl.IntVar(&f.maxLength, "max-length", 512, "longest text in tokens, [CLS] and [SEP] included")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests; those still pending then get 503 and the exit status is 1")
	fl.DurationVar(&f.shutdownDelay, "shutdown-delay", 0, "after SIGTERM, keep serving every request this long while readiness answers 503, so load balancers stop sending first")
	fl.BoolVar(&f.metricsNoAuth, "metrics-no-auth", false, "serve /metrics without the API key (for scrapers without credentials)")
	fl.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go's profiler (net/http/pprof) on this `HOST:PORT`, e.g. 127.0.0.1:6060 (off by default; behind --api-key when one is set)")
	cmd.MarkFlagsMutuallyExclusive("truncate", "no-truncate")
	return cmd
}

func runServe(cmd *cobra.Command, f *serveFlags) error {
	if f.repository == "" && f.model == "" {
		return errors.New("serve: give --model-repository DIR or --model PATH")
	}
	if f.apiKey == "" {
		f.apiKey = os.Getenv(apiKeyEnv)
	}
	if f.maxLength < 2 {
		return fmt.Errorf("serve: --max-length %d is too small (at least 2: [CLS] and [SEP])", f.maxLength)
	}
	serve.SetGCPercent()
	inflight := f.maxInflightBytes
	if inflight <= 0 {
		inflight = 4 * f.maxRequestBytes
	}
	serve.SetMemoryLimit(f.memoryLimit, inflight)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := registerSystemMetrics(reg, f.engine); err != nil {
		return err
	}
	repo, err := repository.New(repository.Config{
		Root:           f.repository,
		ControlMode:    f.controlMode,
		StartupModels:  f.loadModels,
		PollInterval:   time.Duration(f.pollSecs) * time.Second,
		SinglePath:     f.model,
		SingleName:     f.name,
		SingleBatching: f.batching,
		Engine:         f.engine,
		EngineOptions:  engine.Options{Threads: f.threads, GraphOptLevel: -1, ORTLib: f.ortLib},
		MaxBatchTokens: f.maxBatchTokens,
		Truncate:       f.truncate && !f.noTruncate,
		MaxLength:      f.maxLength,
		Registerer:     reg,
		Logger:         slog.Default(),
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv, err := serve.New(repo, serve.Config{
		HTTPAddr:             hostPort(f.host, f.httpPort),
		GRPCAddr:             hostPort(f.host, f.grpcPort),
		MetricsAddr:          hostPort(f.host, f.metricsPort),
		PprofAddr:            f.pprofAddr,
		MaxRequestBytes:      f.maxRequestBytes,
		MaxInflightBytes:     inflight,
		MaxConnections:       f.maxConnections,
		MaxConcurrentStreams: f.maxStreams,
		Limits:               serve.Limits{MaxTexts: f.maxRequestTexts},
		APIKey:               f.apiKey,
		Gatherer:             reg,
		DrainTimeout:         f.drainTimeout,
		ShutdownDelay:        f.shutdownDelay,
		MetricsNoAuth:        f.metricsNoAuth,
		Version:              cmd.Root().Version,
		Logger:               slog.Default(),
	})
	if err != nil {
		return err
	}
	return srv.Serve(cmd.Context())
}

// hostPort joins host and port; a negative port turns the listener off.
func hostPort(host string, port int) string {
	if port < 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
