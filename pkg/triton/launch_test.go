package triton

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

var (
	fakeServerOnce sync.Once
	fakeServerPath string
	fakeServerErr  error
)

// fakeTritonserver builds testdata/fake-tritonserver once per test binary.
func fakeTritonserver(t *testing.T) string {
	t.Helper()
	fakeServerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fake-tritonserver-")
		if err != nil {
			fakeServerErr = err
			return
		}
		fakeServerPath = filepath.Join(dir, "tritonserver")
		out, err := exec.Command("go", "build", "-o", fakeServerPath, "../../testdata/fake-tritonserver").CombinedOutput()
		if err != nil {
			fakeServerErr = fmt.Errorf("build fake tritonserver: %v\n%s", err, out)
		}
	})
	if fakeServerErr != nil {
		t.Fatal(fakeServerErr)
	}
	return fakeServerPath
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// syncBuffer is a bytes.Buffer safe for the launcher's writer goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writtenRepo(t *testing.T) string {
	t.Helper()
	o := baseOptions(t)
	o.Engine = pooledEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64)
	if _, err := WriteRepository(o); err != nil {
		t.Fatal(err)
	}
	return o.Out
}

// runUntilReady starts Run, cancels it once ready, and returns Run's error,
// whether it got ready, and the log.
func runUntilReady(t *testing.T, o ServerOptions) (error, bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := &syncBuffer{}
	o.Log = log
	ready := false
	o.OnReady = func() { ready = true; cancel() }
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	err := Run(ctx, o)
	return err, ready, log.String()
}

func TestRunTritonserver(t *testing.T) {
	bin := fakeTritonserver(t)
	repo := writtenRepo(t)
	cases := []struct {
		name      string
		env       map[string]string
		models    []string
		wantReady bool
		wantErr   string
		wantArgs  []string
	}{
		{"explicit mode, loads the named model, stops on SIGTERM", nil, []string{"m3e-base-trt"}, true, "",
			[]string{"--model-control-mode=explicit", "--load-model=m3e-base-trt", "--load-model=m3e-base-trt-encoder", "--model-repository="}},
		{"no models named: every model in the repository", map[string]string{"M3ECTL_FAKE_TRITON_READY_DELAY": "600ms"}, nil, true, "",
			[]string{"--load-model=m3e-base-trt"}},
		{"model that fails to load", map[string]string{"M3ECTL_FAKE_TRITON_FAIL": "load"}, nil, false, "exited with status 1", nil},
		{"model missing from the repository", nil, []string{"ghost"}, false, "exited with status 1", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			argv := filepath.Join(t.TempDir(), "argv")
			t.Setenv("M3ECTL_FAKE_TRITON_ARGV", argv)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			p := freePorts(t, 3)
			err, ready, log := runUntilReady(t, ServerOptions{Binary: bin, Repo: repo, Models: c.models, HTTPPort: p[0], GRPCPort: p[1], MetricsPort: p[2]})
			if ready != c.wantReady {
				t.Fatalf("ready = %v; err %v; log:\n%s", ready, err, log)
			}
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("err = %v, want %q; log:\n%s", err, c.wantErr, log)
			}
			if c.wantReady && !strings.Contains(log, "Signal (15) received") {
				t.Fatalf("SIGTERM not forwarded; log:\n%s", log)
			}
			got, _ := os.ReadFile(argv)
			for _, a := range append(c.wantArgs, fmt.Sprintf("--http-port=%d", p[0]), fmt.Sprintf("--metrics-port=%d", p[2])) {
				if !strings.Contains(string(got), a) {
					t.Fatalf("tritonserver got %q, missing %q", got, a)
				}
			}
		})
	}
}

func TestRunTritonserverThroughDocker(t *testing.T) {
	bin := fakeTritonserver(t)
	repo := writtenRepo(t)
	dockerArgv := filepath.Join(t.TempDir(), "docker-argv")
	t.Setenv("M3ECTL_FAKE_DOCKER_ARGV", dockerArgv)
	t.Setenv("M3ECTL_FAKE_TRITONSERVER", bin)
	p := freePorts(t, 3)
	docker, _ := filepath.Abs("../../testdata/fake-tritonserver/docker")
	err, ready, log := runUntilReady(t, ServerOptions{Image: "nvcr.io/nvidia/tritonserver:23.08-py3", Docker: docker, Repo: repo,
		Models: []string{"m3e-base-trt"}, HTTPPort: p[0], GRPCPort: p[1], MetricsPort: p[2]})
	if err != nil || !ready {
		t.Fatalf("ready %v, err %v; log:\n%s", ready, err, log)
	}
	got, _ := os.ReadFile(dockerArgv)
	abs, _ := filepath.Abs(repo)
	for _, want := range []string{"run --rm --gpus=all --shm-size=1g", fmt.Sprintf("-p%d:8000 -p%d:8001 -p%d:8002", p[0], p[1], p[2]),
		"-v " + abs + ":/models nvcr.io/nvidia/tritonserver:23.08-py3 tritonserver --model-repository=/models --model-control-mode=explicit --load-model=m3e-base-trt"} {
		if !strings.Contains(string(got), want) {
			t.Fatalf("docker got %q, missing %q", got, want)
		}
	}
}

func TestRunTritonserverMissing(t *testing.T) {
	repo := writtenRepo(t)
	t.Setenv("PATH", t.TempDir())
	cases := []struct {
		name string
		o    ServerOptions
		want error
		msg  string
	}{
		{"no tritonserver on PATH", ServerOptions{Repo: repo}, ErrNoTritonserver, ""},
		{"explicit path missing", ServerOptions{Repo: repo, Binary: "/nonexistent/tritonserver"}, nil, "tritonserver /nonexistent/tritonserver"},
		{"image without docker", ServerOptions{Repo: repo, Image: "nvcr.io/nvidia/tritonserver:24.01-py3"}, nil, "--triton-image needs docker"},
		{"image with another TensorRT", ServerOptions{Repo: repo, Image: "nvcr.io/nvidia/tritonserver:26.06-py3"}, nil,
			"ships TensorRT 11 but the engine was built with TensorRT 8.6.1: use nvcr.io/nvidia/tritonserver:24.04-py3"},
		{"image with another TensorRT, forced", ServerOptions{Repo: repo, Image: "nvcr.io/nvidia/tritonserver:26.06-py3", Force: true}, nil, "--triton-image needs docker"},
		{"image tag without a release", ServerOptions{Repo: repo, Image: "tritonserver:latest"}, nil, "cannot tell the Triton release"},
		{"repository missing", ServerOptions{Repo: "/nonexistent/repo"}, nil, "is not a folder"},
		{"empty repository", ServerOptions{Repo: t.TempDir()}, nil, "has no model folders"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Run(context.Background(), c.o)
			if c.want != nil && !errors.Is(err, c.want) || c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestCommandSwitchesServicesOff: a service serve runs with port -1 is
// switched off with --allow-X=false (command_line_parser.cc@r26.08 takes
// no port of -1), and docker publishes no port for it.
func TestCommandSwitchesServicesOff(t *testing.T) {
	repo := writtenRepo(t)
	bin := fakeTritonserver(t)
	argv, err := Command(ServerOptions{Binary: bin, Repo: repo, HTTPPort: 8000, GRPCPort: -1, MetricsPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(argv, " ")
	for _, want := range []string{"--allow-grpc=false", "--allow-metrics=false", "--http-port=8000", "--load-model=m3e-base-trt-encoder"} {
		if !strings.Contains(got, want) {
			t.Fatalf("argv %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "=-1") {
		t.Fatalf("argv %q passes a port of -1", got)
	}
}

// TestRunTritonserverRejectsInvalidRepository: the fake tritonserver
// applies Triton core's load-time rules, so a repository edited by hand
// into one Triton would refuse fails to load there too.
func TestRunTritonserverRejectsInvalidRepository(t *testing.T) {
	bin := fakeTritonserver(t)
	repo := writtenRepo(t)
	p := filepath.Join(repo, "m3e-base-trt-encoder", "config.pbtxt")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), "TYPE_INT32", "TYPE_FP32", 1)), 0o644)
	ports := freePorts(t, 3)
	err, ready, log := runUntilReady(t, ServerOptions{Binary: bin, Repo: repo, Models: []string{"m3e-base-trt"},
		HTTPPort: ports[0], GRPCPort: ports[1], MetricsPort: ports[2]})
	if ready || err == nil || !strings.Contains(log, "input input_ids is sent as TYPE_INT32 but m3e-base-trt-encoder declares TYPE_FP32") {
		t.Fatalf("ready %v, err %v; log:\n%s", ready, err, log)
	}
}
