package triton

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// ServerOptions says how to start tritonserver on a repository.
type ServerOptions struct {
	Binary       string // tritonserver path; "" = PATH (ignored with Image)
	Image        string // run through docker with this image instead
	Docker       string // docker CLI; "" = PATH
	Repo         string
	Models       []string // --load-model; nil = every model folder in Repo
	HTTPPort     int
	GRPCPort     int
	MetricsPort  int
	ReadyTimeout time.Duration // 0 = 5 minutes (TensorRT engines take a while to load)
	StopTimeout  time.Duration // after SIGTERM, before SIGKILL; 0 = 30 s
	Log          io.Writer     // tritonserver's output; nil = os.Stderr
	Logger       *slog.Logger
	// OnReady, when set, is called once /v2/health/ready answers 200.
	OnReady func()
	// Force runs an Image whose TensorRT differs from the engines'.
	Force bool
	// Notes receives what the image check found (may be nil).
	Notes func(string)
}

// ErrNoTritonserver is returned when neither tritonserver nor docker is usable.
var ErrNoTritonserver = errors.New("tritonserver not found on PATH: install Triton Inference Server, pass --tritonserver PATH, or use --triton-image IMAGE to run it through docker")

// ExitError is tritonserver ending with a non-zero status.
type ExitError struct{ Code int }

// Error implements error.
func (e *ExitError) Error() string { return fmt.Sprintf("tritonserver exited with status %d", e.Code) }

// Command returns the argv that starts tritonserver for o: the binary
// itself, or `docker run` with the GPU, shared-memory and port flags the
// article uses and the repository mounted at /models.
func Command(o ServerOptions) ([]string, error) {
	repo, err := filepath.Abs(o.Repo)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(repo); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("model repository %s is not a folder", o.Repo)
	}
	models := o.Models
	if len(models) == 0 {
		if models, err = ListModels(repo); err != nil {
			return nil, err
		}
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("model repository %s has no model folders with a config.pbtxt", o.Repo)
	}
	models = withDependencies(repo, models)
	if o.Image != "" {
		for _, m := range models {
			trt := modelParam(repo, m, ParamTensorRT)
			if trt == "" {
				continue
			}
			note, err := CheckImage(o.Image, trt, o.Force)
			if err != nil {
				return nil, fmt.Errorf("model %s: %w", m, err)
			}
			if o.Notes != nil {
				o.Notes("model " + m + ": " + note)
			}
		}
	}
	// Only flags tritonserver's parser accepts (server
	// src/command_line_parser.cc@r26.08: model-repository, model-control-mode,
	// load-model, http-port, grpc-port, metrics-port, allow-grpc,
	// allow-metrics); a service m3ectl runs with port -1 is switched off with
	// --allow-X=false, never given a port of -1.
	serverArgs := func(repoPath string, http, grpc, metrics int) []string {
		a := []string{"--model-repository=" + repoPath, "--model-control-mode=explicit"}
		for _, m := range models {
			a = append(a, "--load-model="+m)
		}
		a = append(a, "--http-port="+strconv.Itoa(http))
		if o.GRPCPort < 0 {
			a = append(a, "--allow-grpc=false")
		} else {
			a = append(a, "--grpc-port="+strconv.Itoa(grpc))
		}
		if o.MetricsPort < 0 {
			a = append(a, "--allow-metrics=false")
		} else {
			a = append(a, "--metrics-port="+strconv.Itoa(metrics))
		}
		return a
	}
	if o.Image == "" {
		bin := o.Binary
		if bin == "" {
			bin = "tritonserver"
		}
		path, err := exec.LookPath(bin)
		if err != nil {
			if o.Binary == "" {
				return nil, ErrNoTritonserver
			}
			return nil, fmt.Errorf("tritonserver %s: %w", o.Binary, err)
		}
		return append([]string{path}, serverArgs(repo, o.HTTPPort, o.GRPCPort, o.MetricsPort)...), nil
	}
	docker := o.Docker
	if docker == "" {
		docker = "docker"
	}
	path, err := exec.LookPath(docker)
	if err != nil {
		return nil, fmt.Errorf("--triton-image needs docker: %w", err)
	}
	argv := []string{path, "run", "--rm", "--gpus=all", "--shm-size=1g", fmt.Sprintf("-p%d:8000", o.HTTPPort)}
	if o.GRPCPort >= 0 {
		argv = append(argv, fmt.Sprintf("-p%d:8001", o.GRPCPort))
	}
	if o.MetricsPort >= 0 {
		argv = append(argv, fmt.Sprintf("-p%d:8002", o.MetricsPort))
	}
	argv = append(argv, "-e", "PYTHONIOENCODING=utf-8", "-v", repo+":/models", o.Image, "tritonserver")
	return append(argv, serverArgs("/models", 8000, 8001, 8002)...), nil
}

// modelParam reads one parameter of a model's config.pbtxt ("" when the
// config or the parameter is missing).
func modelParam(repo, model, key string) string {
	text, err := os.ReadFile(filepath.Join(repo, model, "config.pbtxt"))
	if err != nil {
		return ""
	}
	cfg, err := tritonpb.ParseConfig(text)
	if err != nil {
		return ""
	}
	return cfg.GetParameters()[key].GetStringValue()
}

// withDependencies adds the models that the named ones call: a bls model's
// encoder (Triton knows nothing of BLS calls, so in explicit mode it would
// not load it) and an ensemble's steps (which Triton loads itself; naming
// them is harmless).
func withDependencies(repo string, models []string) []string {
	seen := map[string]bool{}
	var out []string
	var add func(string)
	add = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		out = append(out, m)
		text, err := os.ReadFile(filepath.Join(repo, m, "config.pbtxt"))
		if err != nil {
			return
		}
		cfg, err := tritonpb.ParseConfig(text)
		if err != nil {
			return
		}
		if enc := cfg.GetParameters()[ParamEncoderModel].GetStringValue(); enc != "" && cfg.GetParameters()[ParamLayout].GetStringValue() == RoleBLS {
			add(enc)
		}
		for _, st := range cfg.GetEnsembleScheduling().GetStep() {
			add(st.GetModelName())
		}
	}
	for _, m := range models {
		add(m)
	}
	return out
}

// ListModels returns the folders of repo that hold a config.pbtxt, sorted.
func ListModels(repo string) ([]string, error) {
	entries, err := os.ReadDir(repo)
	if err != nil {
		return nil, fmt.Errorf("read model repository: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(repo, e.Name(), "config.pbtxt")); err == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Run starts tritonserver, streams its log, waits until /v2/health/ready
// answers 200 (or fails if it exits or the timeout passes first), and then
// waits for it to end. Cancelling ctx sends it SIGTERM (docker forwards it to
// the container), then SIGKILL after StopTimeout. A server stopped that way
// that exits 0 returns nil; otherwise its status is an *ExitError.
func Run(ctx context.Context, o ServerOptions) error {
	argv, err := Command(o)
	if err != nil {
		return err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	out := o.Log
	if out == nil {
		out = os.Stderr
	}
	stop := o.StopTimeout
	if stop == 0 {
		stop = 30 * time.Second
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	logger.Info("starting tritonserver", "command", argv)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start tritonserver: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	readyCtx, cancelReady := context.WithCancel(ctx)
	defer cancelReady()
	readyErr := make(chan error, 1)
	go func() { readyErr <- waitReady(readyCtx, o.HTTPPort, o.ReadyTimeout) }()

	terminate := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(stop):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
	for {
		select {
		case err := <-done:
			cancelReady()
			return exitStatus(err)
		case err := <-readyErr:
			readyErr = nil
			if err != nil {
				if ctx.Err() != nil {
					continue // shutting down: the ctx case handles it
				}
				_ = terminate()
				return err
			}
			logger.Info("tritonserver ready", "http", o.HTTPPort, "grpc", o.GRPCPort, "metrics", o.MetricsPort)
			if o.OnReady != nil {
				o.OnReady()
			}
		case <-ctx.Done():
			logger.Info("stopping tritonserver (SIGTERM)")
			return exitStatus(terminate())
		}
	}
}

func exitStatus(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
		return &ExitError{Code: code}
	}
	if err != nil {
		return fmt.Errorf("tritonserver: %w", err)
	}
	return nil
}

// waitReady polls /v2/health/ready on the HTTP port until it answers 200.
func waitReady(ctx context.Context, port int, timeout time.Duration) error {
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/v2/health/ready", port)
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tritonserver not ready at %s within %s", url, timeout)
		case <-tick.C:
		}
	}
}
