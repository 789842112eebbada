package repository

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
	_ "github.com/m3ectl/m3ectl/pkg/engine/onnxrt" // the real CPU engine
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

const tolerance = 1e-5

func fixture(p ...string) string {
	abs, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "..", "testdata"}, p...)...))
	if err != nil {
		panic(err)
	}
	return abs
}

// needORT skips without ONNX Runtime, except under CI where its absence is
// a set-up bug.
func needORT(t testing.TB) {
	t.Helper()
	if err := engine.Available("cpu"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but ONNX Runtime is unavailable: %v", err)
		}
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
}

// The article's config.pbtxt, width 64 for the tiny fixture.
const articleConfig = `name: "m3e-base-trt"
backend: "python"
max_batch_size: 32
input [ { name: "text" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "embeddings" data_type: TYPE_FP32 dims: [ 64 ] } ]
instance_group [ { count: 2 kind: KIND_GPU } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
`

// writeModel creates root/name with config (skipped when "") and version
// folders linking the tiny fixture's model.onnx and vocab.txt.
func writeModel(t testing.TB, root, name, config string, versions ...string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		vdir := filepath.Join(dir, v)
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"model.onnx", "vocab.txt"} {
			if err := os.Symlink(fixture("m3e-tiny", f), filepath.Join(vdir, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The config last, so that a poller never sees it before the files it names.
	if config != "" {
		writeFile(t, filepath.Join(dir, "config.pbtxt"), config)
	}
	return dir
}

// writeFile replaces path in one rename, as a careful operator does, so that
// a polling manager never reads it half-written.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".write-*")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.WriteString(content)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		t.Fatal(errors.Join(werr, cerr))
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// autoUnlessGPU is "auto" where no GPU is usable, so that tests see the
// rule "KIND_GPU without a GPU runs on cpu", and "cpu" on GPU machines,
// where the CPU reference tolerance still has to hold.
func autoUnlessGPU() string {
	if engine.Available("cuda") == nil {
		return "cpu"
	}
	return "auto"
}

// startManager creates and starts a Manager that is closed when the test
// ends.
func startManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Engine == "" {
		cfg.Engine = "cpu" // reference checks hold 1e-5 on the fp32 CPU engine; GPU tests ask for more
	}
	if cfg.EngineOptions.Threads == 0 {
		cfg.EngineOptions.Threads = 1
	}
	cfg.Truncate = true
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

type refCase struct {
	Text      string    `json:"text"`
	Embedding []float32 `json:"embedding"`
}

func reference(t testing.TB) []refCase {
	t.Helper()
	b, err := os.ReadFile(fixture("m3e-tiny", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ Cases []refCase }
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref.Cases
}

// checkReference asserts that the model reproduces the reference
// embeddings of the first n cases within tolerance, as one request.
func checkReference(t *testing.T, md *Model, n int) {
	t.Helper()
	cases := reference(t)[:n]
	texts := make([]string, n)
	for i, c := range cases {
		texts[i] = c.Text
	}
	res, err := md.Infer(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	dim := md.Dim()
	for i, c := range cases {
		for j, want := range c.Embedding {
			if d := math.Abs(float64(res.Embeddings[i*dim+j] - want)); d > tolerance {
				t.Fatalf("case %d component %d: |Δ| = %g > %g", i, j, d, tolerance)
			}
		}
	}
}

func entryFor(idx []IndexEntry, name, version string) (IndexEntry, bool) {
	for _, e := range idx {
		if e.Name == name && e.Version == version {
			return e, true
		}
	}
	return IndexEntry{}, false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func loadTokenizer(path string) (*tokenizer.Tokenizer, error) { return tokenizer.Load(path) }
