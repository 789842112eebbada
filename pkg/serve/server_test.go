package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt" // registers the "cpu" backend
	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// The tests below start the real server (real repository, dynamic batcher
// and ONNX Runtime on the bundled m3e-tiny model) on loopback ports and talk
// to it as clients do.

const tinyDim = 64

// refCase is one text of testdata/m3e-tiny/reference.json with the
// embedding sentence-transformers computed for it.
type refCase struct {
	Text      string    `json:"text"`
	Embedding []float32 `json:"embedding"`
}

func loadReference(t testing.TB) []refCase {
	t.Helper()
	b, err := os.ReadFile("../../testdata/m3e-tiny/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ Cases []refCase }
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref.Cases
}

// modelConfig is a config.pbtxt in the article's form for the tiny model.
func modelConfig(name string, maxBatch int, queueDelayUS int) string {
	return fmt.Sprintf(`name: %q
backend: "onnxruntime"
max_batch_size: %d
input [ { name: "text" dims: [ -1 ] data_type: TYPE_STRING } ]
output [ { name: "embeddings" dims: [ %d ] data_type: TYPE_FP32 } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: %d }
`, name, maxBatch, tinyDim, queueDelayUS)
}

// writeModel lays out DIR/name/config.pbtxt and DIR/name/version/{model.onnx,vocab.txt}.
func writeModel(t testing.TB, root, name, version, config string) {
	t.Helper()
	vdir := filepath.Join(root, name, version)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, name, "config.pbtxt"), []byte(config), 0o644); err != nil {
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
}

// testServer is a running server and how to reach it.
type testServer struct {
	*Server
	url      string
	registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan error
}

type serverOpts struct {
	repo    repository.Config
	cfg     Config
	noStart bool
}

// startServer runs a server on 127.0.0.1:0 listeners and stops it (checking
// that Serve returns nil) when the test ends.
func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	if err := onnxrt.Init(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but ONNX Runtime is unavailable: %v", err)
		}
		t.Skipf("ONNX Runtime unavailable (run scripts/setup-ort.sh): %v", err)
	}
	reg := prometheus.NewRegistry()
	o.repo.Registerer = reg
	o.repo.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.repo.Engine == "" {
		o.repo.Engine = "cpu"
	}
	if o.repo.ControlMode == "" {
		o.repo.ControlMode = "none"
	}
	if o.repo.MaxLength == 0 {
		o.repo.MaxLength = 512
		o.repo.Truncate = true
	}
	if o.repo.EngineOptions.Threads == 0 {
		o.repo.EngineOptions.Threads = 1
	}
	repo, err := repository.New(o.repo)
	if err != nil {
		t.Fatalf("repository: %v", err)
	}
	ln := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	o.cfg.HTTPListener, o.cfg.GRPCListener, o.cfg.MetricsListener = ln(), ln(), ln()
	o.cfg.Gatherer = reg
	o.cfg.Logger = o.repo.Logger
	srv, err := New(repo, o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, url: "http://" + srv.HTTPAddr(), registry: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	// Wait until the repository's startup models are ready.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(ts.url + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ts
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server not ready after 60 s")
	return nil
}

// startRepoServer serves a fresh repository holding model "m3e".
func startRepoServer(t testing.TB, maxBatch, queueDelayUS int, cfg Config) *testServer {
	t.Helper()
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", maxBatch, queueDelayUS))
	return startServer(t, serverOpts{repo: repository.Config{Root: root}, cfg: cfg})
}

// do sends a request and returns status, headers and body.
func (ts *testServer) do(t testing.TB, method, path string, body []byte, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (ts *testServer) post(t testing.TB, path, body string) (int, []byte) {
	t.Helper()
	code, _, b := ts.do(t, http.MethodPost, path, []byte(body), nil)
	return code, b
}

func (ts *testServer) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	code, _, b := ts.do(t, http.MethodGet, path, nil, nil)
	return code, b
}

type kserveResponse struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name       string         `json:"name"`
		Datatype   string         `json:"datatype"`
		Shape      []int64        `json:"shape"`
		Data       []float32      `json:"data"`
		Parameters map[string]any `json:"parameters"`
	} `json:"outputs"`
}

// inferBody is a KServe JSON request for texts, shape [N,1].
func inferBody(texts ...string) string {
	b, _ := json.Marshal(map[string]any{
		"inputs": []map[string]any{{"name": "text", "datatype": "BYTES", "shape": []int{len(texts), 1}, "data": texts}},
	})
	return string(b)
}

// assertClose checks every component within 1e-5 of the reference.
func assertClose(t testing.TB, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
			t.Fatalf("%s: component %d differs by %g (got %v want %v)", what, i, d, got[i], want[i])
		}
	}
}

// errorBody decodes the {"error": "..."} answer every failure carries.
func errorBody(t testing.TB, b []byte) string {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || *e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": \"...\"}", b)
	}
	return *e.Error
}

// parallel runs f(i) for i in [0, n) on n goroutines and waits.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); f(i) }()
	}
	wg.Wait()
}

func mustContain(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}
