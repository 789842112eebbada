package serve

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
	_ "github.com/m3ectl/m3ectl/pkg/engine/cuda" // M3ECTL_BENCH_ENGINE=cuda
	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// BenchmarkEngineVsServer answers issue 4's "done when": at concurrency 32,
// how much of the engine's own throughput does the whole server keep?
//
// Three measurements on the same model, texts and batch size, one after the
// other in one process:
//
//   - server: 32 HTTP clients send the article's one-text KServe request;
//   - model: 32 goroutines call repository.Model.Infer in process (tokenise,
//     queue, dynamic batching, engine, no protocol);
//   - engine: engine.Engine.Embed alone, on pre-tokenised batches of the mean
//     size the server's batcher formed (read from its statistics).
//
// Reported: texts/s of each, server/engine and server/model ratios, and the
// mean batch. The model defaults to testdata/m3e-tiny (where per-request
// overhead weighs most); M3ECTL_BENCH_MODEL names another (.onnx or model
// folder), M3ECTL_BENCH_ENGINE the backend (cpu), M3ECTL_BENCH_THREADS the
// engine threads (GOMAXPROCS). M3ECTL_BENCH_PROFILE=FILE writes a CPU
// profile of the server phase alone (clients included: same process),
// M3ECTL_BENCH_PROFILE_MODEL one of the in-process phase.
func BenchmarkEngineVsServer(b *testing.B) {
	const conc = 32
	modelPath := envOr("M3ECTL_BENCH_MODEL", "../../testdata/m3e-tiny/model.onnx")
	backend := envOr("M3ECTL_BENCH_ENGINE", "cpu")
	threads, _ := strconv.Atoi(envOr("M3ECTL_BENCH_THREADS", strconv.Itoa(runtime.GOMAXPROCS(0))))
	texts := benchTexts(b)
	if os.Getenv("GOGC") == "" { // as `m3ectl serve` runs
		defer debug.SetGCPercent(debug.SetGCPercent(serveGCPercent))
	}

	instances, _ := strconv.Atoi(envOr("M3ECTL_BENCH_INSTANCES", "1"))
	delayUS, _ := strconv.Atoi(envOr("M3ECTL_BENCH_DELAY_US", "2000"))
	maxBatch, _ := strconv.Atoi(envOr("M3ECTL_BENCH_MAX_BATCH", "32"))
	root := b.TempDir()
	benchRepository(b, root, modelPath, maxBatch, instances, delayUS)
	ts := startServer(b, serverOpts{repo: repository.Config{
		Root: root, Engine: backend, EngineOptions: engine.Options{Threads: threads},
	}})
	// M3ECTL_BENCH_BINARY=1: answers in Triton's binary tensor format, no
	// float formatting (the protocol's floor).
	binaryOut := os.Getenv("M3ECTL_BENCH_BINARY") == "1"
	bodies := make([][]byte, len(texts))
	for i, t := range texts {
		bodies[i] = []byte(inferBody(t))
		if binaryOut {
			bodies[i] = bytes.Replace(bodies[i], []byte(`{"inputs"`), []byte(`{"parameters":{"binary_data_output":true},"inputs"`), 1)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	url := ts.url + "/v2/models/bench/infer"
	m, err := ts.repo.Model("bench", "")
	if err != nil {
		b.Fatal(err)
	}
	// Warm connections and the engine.
	runConcurrent(conc, 4*conc, func(i int) error { return benchPost(client, url, bodies[i%len(bodies)]) })
	before := m.Statistics()

	b.ResetTimer()
	stopProfile := profilePhase(b, "M3ECTL_BENCH_PROFILE")
	serverRate := runConcurrent(conc, b.N, func(i int) error { return benchPost(client, url, bodies[i%len(bodies)]) })
	stopProfile()
	after := m.Statistics()
	stopProfile = profilePhase(b, "M3ECTL_BENCH_PROFILE_MODEL")
	modelRate := runConcurrent(conc, b.N, func(i int) error {
		_, err := m.Infer(context.Background(), texts[i%len(texts):i%len(texts)+1])
		return err
	})
	stopProfile()
	execs := after.GetExecutionCount() - before.GetExecutionCount()
	meanBatch := float64(after.GetInferenceCount()-before.GetInferenceCount()) / float64(max(execs, 1))
	engineRate := engineAlone(b, modelPath, backend, threads, instances, texts, max(int(meanBatch+0.5), 1), b.N)
	b.StopTimer()

	b.ReportMetric(serverRate, "server-texts/s")
	b.ReportMetric(modelRate, "model-texts/s")
	b.ReportMetric(engineRate, "engine-texts/s")
	b.ReportMetric(serverRate/engineRate, "server/engine")
	b.ReportMetric(serverRate/modelRate, "server/model")
	b.ReportMetric(meanBatch, "mean-batch")
	// Where a server request's time goes: the client's mean latency (Little's
	// law), the part spent inside Model.Infer, and that part's queue and
	// compute shares, from the model's statistics over the server phase.
	perReq := func(d func(*tritonpb.InferStatistics) *tritonpb.StatisticDuration) float64 {
		a, z := d(after.GetInferenceStats()), d(before.GetInferenceStats())
		return float64(a.GetNs()-z.GetNs()) / float64(max(a.GetCount()-z.GetCount(), 1)) / 1e6
	}
	b.ReportMetric(conc/serverRate*1e3, "client-ms")
	b.ReportMetric(perReq((*tritonpb.InferStatistics).GetSuccess), "infer-ms")
	b.ReportMetric(perReq((*tritonpb.InferStatistics).GetQueue), "queue-ms")
	b.ReportMetric(perReq((*tritonpb.InferStatistics).GetComputeInfer), "compute-ms")
}

// profilePhase starts a CPU profile when the environment variable env
// names a file, and returns what stops it.
func profilePhase(b *testing.B, env string) func() {
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// benchTexts are the reference texts under 40 characters: sentences of the
// article's kind (~17 tokens), not the 512-token paragraph.
func benchTexts(b *testing.B) []string {
	var out []string
	for _, c := range loadReference(b) {
		if n := len([]rune(c.Text)); n > 0 && n < 40 {
			out = append(out, c.Text)
		}
	}
	return out
}

// benchRepository lays out ROOT/bench with links to the model under test,
// batching as the article configures Triton (max 32 rows, 2 ms delay by
// default; M3ECTL_BENCH_MAX_BATCH, M3ECTL_BENCH_INSTANCES and
// M3ECTL_BENCH_DELAY_US change them).
func benchRepository(b *testing.B, root, modelPath string, maxBatch, instances, delayUS int) {
	abs, err := filepath.Abs(modelPath)
	if err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		b.Fatal(err)
	}
	m, err := engine.ResolveModel(abs)
	if err != nil {
		b.Fatal(err)
	}
	// The width when the folder says it; -1 (the engine's) otherwise, so an
	// exported .onnx of any width serves (M3ECTL_BENCH_MODEL).
	dim := m.Dim
	if dim == 0 {
		dim = -1
	}
	vdir := filepath.Join(root, "bench", "1")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		b.Fatal(err)
	}
	links := map[string]string{"model": abs}
	if !st.IsDir() {
		links = map[string]string{"model.onnx": abs}
		if m.Tokenizer != "" {
			links[filepath.Base(m.Tokenizer)] = m.Tokenizer
			if st, err := os.Stat(m.Tokenizer); err == nil && st.IsDir() {
				// A folder (m3ectl export's output): its tokenizer files.
				delete(links, filepath.Base(m.Tokenizer))
				for _, f := range []string{"vocab.txt", "tokenizer.json", "tokenizer_config.json"} {
					if _, err := os.Stat(filepath.Join(m.Tokenizer, f)); err == nil {
						links[f] = filepath.Join(m.Tokenizer, f)
					}
				}
			}
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(vdir, name)); err != nil {
			b.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`name: "bench"
max_batch_size: %d
input [ { name: "text" dims: [ -1 ] data_type: TYPE_STRING } ]
output [ { name: "embeddings" dims: [ %d ] data_type: TYPE_FP32 } ]
instance_group [ { count: %d kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: %d }
`, maxBatch, dim, instances, delayUS)
	// M3ECTL_BENCH_POLICY=continuous: the continuous batching policy
	// (issue 16) instead of Triton's delay.
	if p := os.Getenv("M3ECTL_BENCH_POLICY"); p != "" {
		cfg += fmt.Sprintf("parameters { key: \"BATCHING_POLICY\" value: { string_value: %q } }\n", p)
	}
	if err := os.WriteFile(filepath.Join(root, "bench", "config.pbtxt"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
}

// benchBuffers keep the load generator from allocating a body per answer:
// client and server share this process's heap, and the client's garbage
// would be collected on the server's time.
var benchBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func benchPost(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf := benchBuffers.Get().(*bytes.Buffer)
	defer benchBuffers.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	b := buf.Bytes()
	// The load generator checks status and framing only: parsing 768
	// floats of JSON per answer would cost the client more CPU than the
	// server spends, and this measures the server (the tests check values).
	framed := bytes.HasSuffix(b, []byte("]}]}")) || resp.Header.Get(headerContentLength) != ""
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(b, []byte(`{"model_name":`)) || !framed {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return nil
}

// runConcurrent runs n calls of f on conc goroutines and returns calls/s.
// It panics on the first error: a benchmark with failures measures nothing.
func runConcurrent(conc, n int, f func(i int) error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		panic(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// engineAlone times n texts through Engine.Embed in batches of batch rows,
// tokenised beforehand: the work the server's one instance does, without
// the server.
func engineAlone(b *testing.B, modelPath, backend string, threads, instances int, texts []string, batch, n int) float64 {
	m, err := engine.ResolveModel(modelPath)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokenizer.Load(m.Tokenizer)
	if err != nil {
		b.Fatal(err)
	}
	// Instances split the threads, as the repository does.
	engs := make([]engine.Engine, max(instances, 1))
	for i := range engs {
		eng, err := engine.Open(backend, m, engine.Options{Threads: max(threads/len(engs), 1), GraphOptLevel: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer eng.Close()
		engs[i] = eng
	}
	// The same mix of texts the clients send, in their order, cut into
	// batches of the size the server's batcher formed.
	rows := make([][]int32, len(texts)*batch)
	for i := range rows {
		rows[i] = tok.Encode(texts[i%len(texts)])
	}
	var batches []*engine.Batch
	for lo := 0; lo < len(rows); lo += batch {
		batches = append(batches, engine.NewBatch(rows[lo:lo+batch]))
	}
	ctx := context.Background()
	for _, eng := range engs {
		if _, err := eng.Embed(ctx, batches[0]); err != nil {
			b.Fatal(err)
		}
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, eng := range engs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; done.Load() < int64(n); i++ {
				bt := batches[i%len(batches)]
				if _, err := eng.Embed(ctx, bt); err != nil {
					panic(err)
				}
				done.Add(int64(bt.Rows()))
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// BenchmarkProtocolPath is the wire side's own cost per request, without
// network or model: decode (as handleInfer does: the fast path, else the
// scan and encoding/json) and validate the article's one-text request,
// then encode a 768-wide answer (m3e-base's width) as JSON.
func BenchmarkProtocolPath(b *testing.B) {
	body := []byte(articleBody)
	spec := modelSpec{name: "m3e", version: "1", input: "text", output: "embeddings", maxBatchSize: 32, dim: 768}
	emb := make([]float32, 768)
	for i := range emb {
		emb[i] = float32(i%97)/97 - 0.5
	}
	b.ReportAllocs()
	for b.Loop() {
		call, ok := fastDecodeKServe(body, testFastLimits)
		if !ok {
			b.Fatal("the article's request missed the fast path")
		}
		plan, err := validate(call, spec)
		if err != nil {
			b.Fatal(err)
		}
		buf := getBuffer()
		*buf = appendKServeJSON((*buf)[:0], &inferAnswer{model: "m3e", version: "1", id: plan.id, output: "embeddings", rows: 1, dim: 768, embeddings: emb})
		putBuffer(buf)
	}
}
