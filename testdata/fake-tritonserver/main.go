// Command fake-tritonserver stands in for NVIDIA's tritonserver in tests
// (Triton cannot be installed here). Tests build it with
// `go build -o DIR/tritonserver ./testdata/fake-tritonserver`.
//
// It takes tritonserver's flags (--opt=value or --opt value) and rejects
// unknown ones the way tritonserver does; checks the repository, the control
// mode and that every --load-model folder holds a config.pbtxt that parses as
// a Triton ModelConfig named after its folder with a version folder and
// passes Triton core's load-time rules (pkg/triton.CheckRepository); then
// serves /v2/health/live, /v2/health/ready and /v2/models/{m}/ready on the
// HTTP port and exits 0 on SIGTERM/SIGINT after printing Triton's shutdown
// lines.
//
// Environment:
//
//	M3ECTL_FAKE_TRITON_ARGV         append the arguments (one line, space separated) to this file
//	M3ECTL_FAKE_TRITON_READY_DELAY  how long /v2/health/ready answers 503 first (Go duration)
//	M3ECTL_FAKE_TRITON_FAIL=load    fail loading the first model and exit 1
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/m3ectl/m3ectl/pkg/triton"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

var valued = map[string]bool{
	"model-repository": true, "model-store": true, "model-control-mode": true, "load-model": true,
	"http-port": true, "grpc-port": true, "metrics-port": true, "log-verbose": true,
	"strict-model-config": true, "exit-on-error": true, "backend-config": true, "http-address": true, "grpc-address": true,
}
var boolean = map[string]bool{"allow-http": true, "allow-grpc": true, "allow-metrics": true, "disable-auto-complete-config": true}

func logf(level, format string, a ...any) {
	fmt.Printf("%s%s %d fake_server.cc:1] %s\n", level, time.Now().Format("0102 15:04:05.000000"), os.Getpid(), fmt.Sprintf(format, a...))
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	args := os.Args[1:]
	if f := os.Getenv("M3ECTL_FAKE_TRITON_ARGV"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, strings.Join(args, " "))
			fh.Close()
		}
	}
	opts := map[string][]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			die("unexpected argument %q", a)
		}
		k, v, hasV := strings.Cut(a[2:], "=")
		switch {
		case valued[k]:
			if !hasV {
				if i+1 >= len(args) {
					die("option '--%s' requires an argument", k)
				}
				i++
				v = args[i]
			}
		case boolean[k]:
		default:
			die("unrecognized option '--%s'", k)
		}
		opts[k] = append(opts[k], v)
	}
	repos := append(opts["model-repository"], opts["model-store"]...)
	if len(repos) == 0 {
		die("--model-repository must be specified")
	}
	for _, r := range repos {
		if st, err := os.Stat(r); err != nil || !st.IsDir() {
			die("failed to stat file %s", r)
		}
	}
	mode := "none"
	if m := opts["model-control-mode"]; len(m) > 0 {
		mode = m[len(m)-1]
	}
	if mode != "none" && mode != "poll" && mode != "explicit" {
		die("unexpected value for --model-control-mode: %s", mode)
	}
	if len(opts["load-model"]) > 0 && mode != "explicit" {
		die("Use of '--load-model' requires setting '--model-control-mode=explicit' as well.")
	}
	port := func(name string, def int) int {
		p := def
		if v := opts[name]; len(v) > 0 {
			n, err := strconv.Atoi(v[len(v)-1])
			if err != nil || n < 0 || n > 65535 {
				die("invalid value for --%s: %s", name, v[len(v)-1])
			}
			p = n
		}
		return p
	}
	httpPort, grpcPort, metricsPort := port("http-port", 8000), port("grpc-port", 8001), port("metrics-port", 8002)

	var loaded []string
	for _, name := range opts["load-model"] {
		if os.Getenv("M3ECTL_FAKE_TRITON_FAIL") == "load" {
			logf("E", "failed to load '%s' version 1: Internal: fake failure", name)
			die("failed to load all models")
		}
		if err := checkModel(repos[0], name); err != nil {
			logf("E", "failed to load '%s': %v", name, err)
			die("failed to load all models")
		}
		// Triton core's load-time rules (model_config_utils.cc,
		// ensemble_utils.cc), as m3ectl implements them.
		problems, err := triton.CheckRepository(repos[0], []string{name})
		if err != nil {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			logf("E", "failed to load '%s' version 1: Invalid argument: %s", name, strings.Join(problems, "; "))
			die("failed to load all models")
		}
		logf("I", "successfully loaded '%s' version 1", name)
		loaded = append(loaded, name)
	}

	delay, _ := time.ParseDuration(os.Getenv("M3ECTL_FAKE_TRITON_READY_DELAY"))
	start := time.Now()
	var stopping atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) < delay || stopping.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /v2/models/{model}/ready", func(w http.ResponseWriter, r *http.Request) {
		for _, m := range loaded {
			if m == r.PathValue("model") {
				return
			}
		}
		w.WriteHeader(http.StatusBadRequest)
	})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		die("failed to start HTTP service: %v", err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	logf("I", "Started GRPCInferenceService at 0.0.0.0:%d", grpcPort)
	logf("I", "Started HTTPService at 0.0.0.0:%d", httpPort)
	logf("I", "Started Metrics Service at 0.0.0.0:%d", metricsPort)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	stopping.Store(true)
	n := 15
	if s == syscall.SIGINT {
		n = 2
	}
	logf("I", "Signal (%d) received.", n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	for _, m := range loaded {
		logf("I", "successfully unloaded '%s' version 1", m)
	}
	logf("I", "Waiting for in-flight requests to complete.")
	logf("I", "All models are stopped, unloading models")
}

func checkModel(repo, name string) error {
	dir := filepath.Join(repo, name)
	text, err := os.ReadFile(filepath.Join(dir, "config.pbtxt"))
	if err != nil {
		return fmt.Errorf("no config.pbtxt in %s", dir)
	}
	cfg, err := tritonpb.ParseConfig(text)
	if err != nil {
		return err
	}
	if cfg.Name != "" && cfg.Name != name {
		return fmt.Errorf("model name %q in config.pbtxt does not match folder %q", cfg.Name, name)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			return nil
		}
	}
	return fmt.Errorf("no version folder in %s", dir)
}
