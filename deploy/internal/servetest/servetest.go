// Package servetest starts the real m3ectl binary for the deployment tests:
// it builds it once from the main module (or takes $M3ECTL_BIN), runs
// `m3ectl serve` with the arguments a chart or runtime gives it, and waits
// until the server says it is ready.
package servetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Root is the main module's directory (the repository root).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Binary returns the path of an m3ectl binary: $M3ECTL_BIN, or one built
// from the main module once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("M3ECTL_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "m3ectl-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "m3ectl")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/m3ectl")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/m3ectl: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// ORTLib returns ONNX Runtime's library, skipping the test when the set-up
// has not installed it.
func ORTLib(t testing.TB) string {
	t.Helper()
	lib := os.Getenv("ONNXRUNTIME_LIB")
	if lib == "" {
		lib = filepath.Join(Root(), "third_party", "onnxruntime", "libonnxruntime.so")
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("ONNX Runtime library not installed (make setup): %v", err)
	}
	return lib
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is one running `m3ectl serve` process.
type Server struct {
	HTTP, GRPC, Metrics int
	cmd                 *exec.Cmd
	stderr              *syncBuffer
	done                chan error
}

// Loopback returns the flags that put a server on 127.0.0.1 with free ports;
// appended after a chart's arguments they win, as the last value of a flag
// does.
func Loopback(t testing.TB) (flags []string, http, grpc, metrics int) {
	http, grpc, metrics = FreePort(t), FreePort(t), FreePort(t)
	return []string{"--host=127.0.0.1", "--http-port=" + strconv.Itoa(http),
		"--grpc-port=" + strconv.Itoa(grpc), "--metrics-port=" + strconv.Itoa(metrics)}, http, grpc, metrics
}

// Start runs bin with args (the first being "serve") and env added to the
// environment, and waits until /v2/health/ready answers 200. The process is
// stopped with SIGTERM when the test ends.
func Start(t testing.TB, bin string, args []string, env []string, http, grpc, metrics int) *Server {
	t.Helper()
	s := &Server{HTTP: http, GRPC: grpc, Metrics: metrics, stderr: &syncBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(append(os.Environ(), "ONNXRUNTIME_LIB="+ORTLib(t)), env...)
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { _ = s.Stop(30 * time.Second) })
	if err := s.WaitReady(60 * time.Second); err != nil {
		t.Fatalf("m3ectl %v: %v\n%s", args, err, s.Log())
	}
	return s
}

// URL is the server's HTTP base URL.
func (s *Server) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.HTTP) }

// WaitReady polls /v2/health/ready until it answers 200, the process exits
// or the timeout passes.
func (s *Server) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("exited before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s", timeout)
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(s.URL() + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// ErrRunning is Wait's error when the process has not exited in time.
var ErrRunning = errors.New("still running")

// Signal sends sig to the process.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit and returns its error.
func (s *Server) Wait(timeout time.Duration) error {
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(timeout):
		return fmt.Errorf("%w after %s", ErrRunning, timeout)
	}
}

// Stop sends SIGTERM and waits for the exit; past timeout it kills.
func (s *Server) Stop(timeout time.Duration) error {
	select {
	case err := <-s.done:
		s.done <- err
		return err
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.Wait(timeout); !errors.Is(err, ErrRunning) {
		return err
	}
	_ = s.cmd.Process.Kill()
	return s.Wait(5 * time.Second)
}

// Log is what the process wrote so far.
func (s *Server) Log() string { return s.stderr.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
