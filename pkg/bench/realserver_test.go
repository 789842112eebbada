package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m3ectl/m3ectl/pkg/engine"
	_ "github.com/m3ectl/m3ectl/pkg/engine/onnxrt" // the "cpu" backend
	"github.com/m3ectl/m3ectl/pkg/serve"
	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// startRealServer runs the real m3ectl server (pkg/serve in front of the
// repository, ONNX Runtime on the bundled tiny model, dynamic batching) on
// 127.0.0.1:0 and returns its HTTP URL and gRPC address.
func startRealServer(t *testing.T, model string) (httpURL, grpcAddr string) {
	t.Helper()
	if os.Getenv("ONNXRUNTIME_LIB") == "" {
		if _, err := os.Stat("../../third_party/onnxruntime/libonnxruntime.so"); err != nil {
			t.Skip("ONNX Runtime not installed (run scripts/setup-ort.sh or set ONNXRUNTIME_LIB)")
		}
	}
	root := t.TempDir()
	vdir := filepath.Join(root, model, "1")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`name: %q
backend: "onnxruntime"
max_batch_size: 32
input [ { name: "text" dims: [ -1 ] data_type: TYPE_STRING } ]
output [ { name: "embeddings" dims: [ 64 ] data_type: TYPE_FP32 } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
`, model)
	if err := os.WriteFile(filepath.Join(root, model, "config.pbtxt"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model.onnx", "vocab.txt"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/m3e-tiny", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vdir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	repo, err := repository.New(repository.Config{Root: root, Engine: "cpu", MaxLength: 512, Truncate: true,
		EngineOptions: engine.Options{Threads: 1}, Registerer: reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ln := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	srv, err := serve.New(repo, serve.Config{HTTPListener: ln(), GRPCListener: ln(), Gatherer: reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	})
	return "http://" + srv.HTTPAddr(), srv.GRPCAddr()
}

// TestAgainstTheRealServer runs the bench against the real m3ectl server and
// checks that its request counts agree with the server's own success
// counter, per protocol.
func TestAgainstTheRealServer(t *testing.T) {
	httpURL, grpcAddr := startRealServer(t, "m3e-tiny")
	waitReady(t, httpURL)
	for _, proto := range Protocols {
		t.Run(proto, func(t *testing.T) {
			url := httpURL
			if proto == ProtoKServeGRPC {
				url = grpcAddr
			}
			o := shortRun(url, "m3e-tiny", proto)
			o.Concurrency = "1,4"
			o.JSON = "-"
			o.TextsPerRequest = 2
			var out bytes.Buffer
			if err := Execute(context.Background(), o, &out); err != nil {
				t.Fatal(err)
			}
			var res Result
			if err := jsonUnmarshal(out.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			for _, lv := range res.Levels {
				if lv.Requests == 0 || lv.Errors != 0 || lv.Sent != lv.Succeeded {
					t.Errorf("c=%d: %+v", lv.Concurrency, lv)
				}
				s := lv.Server
				if s == nil {
					t.Fatalf("c=%d: the server's statistics were not read", lv.Concurrency)
				}
				if s.Success != uint64(lv.Succeeded) || s.Fail != 0 {
					t.Errorf("c=%d: server counted %d successes (%d failures), bench %d", lv.Concurrency, s.Success, s.Fail, lv.Succeeded)
				}
				if s.InferenceCount != 2*s.Success || s.MeanBatch < 2 {
					t.Errorf("c=%d: %d rows for %d requests, mean batch %.2f", lv.Concurrency, s.InferenceCount, s.Success, s.MeanBatch)
				}
			}
		})
	}
}

// waitReady polls the readiness endpoint: models load and warm up first.
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the server did not become ready in 60 s")
}
