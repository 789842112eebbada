package main

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/m3ectl/m3ectl/pkg/bulk"
	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/engine/cuda"
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// recorder passes batches to the engine and keeps a copy of each, so the
// bulk job's own batches (pkg/bulk's tokenising, sorting and cutting) can be
// timed one by one afterwards.
type recorder struct {
	*cuda.Engine
	mu      sync.Mutex
	batches []*engine.Batch
	dim     int // without an engine (runBulkNCU): the width of the zeros returned
}

func (r *recorder) Embed(ctx context.Context, b *engine.Batch) ([]float32, error) {
	c := &engine.Batch{IDs: append([]int32(nil), b.IDs...), Offsets: append([]int32(nil), b.Offsets...)}
	r.mu.Lock()
	r.batches = append(r.batches, c)
	r.mu.Unlock()
	if r.Engine == nil {
		return make([]float32, b.Rows()*r.dim), nil
	}
	return r.Engine.Embed(ctx, b)
}

// EmbedInto records too: bulk.Run prefers it (engine.IntoEmbedder), and the
// embedded engine's own would skip the recording.
func (r *recorder) EmbedInto(ctx context.Context, b *engine.Batch, dst []float32) ([]float32, error) {
	if r.Engine == nil {
		out, err := r.Embed(ctx, b)
		return out, err
	}
	c := &engine.Batch{IDs: append([]int32(nil), b.IDs...), Offsets: append([]int32(nil), b.Offsets...)}
	r.mu.Lock()
	r.batches = append(r.batches, c)
	r.mu.Unlock()
	return r.Engine.EmbedInto(ctx, b, dst)
}

// Submit and Await record too: bulk.Run queues batches through them on an
// engine.Pipeliner. Without an engine, Await returns zeros.
func (r *recorder) Submit(ctx context.Context, b *engine.Batch) (engine.Ticket, error) {
	c := &engine.Batch{IDs: append([]int32(nil), b.IDs...), Offsets: append([]int32(nil), b.Offsets...)}
	r.mu.Lock()
	r.batches = append(r.batches, c)
	r.mu.Unlock()
	if r.Engine == nil {
		return engine.Ticket{Rows: b.Rows()}, nil
	}
	return r.Engine.Submit(ctx, b)
}

func (r *recorder) Await(t engine.Ticket, dst []float32) ([]float32, error) {
	if r.Engine == nil {
		return make([]float32, t.Rows*r.dim), nil
	}
	return r.Engine.Await(t, dst)
}

func (r *recorder) Info() engine.Info {
	if r.Engine == nil {
		return engine.Info{Dim: r.dim}
	}
	return r.Engine.Info()
}

func (r *recorder) Close() error {
	if r.Engine == nil {
		return nil
	}
	return r.Engine.Close()
}

// runBulkSplit cuts the corpus into the bulk job's batches without a GPU
// (a recorder with no engine), then on one engine: with ncu, runs the
// median-length and the longest batch eagerly twice each (Engine.Profile:
// few enough kernels for Nsight Compute); otherwise prints the graph time
// and stage split of the shortest-row, median and longest-row batches (a
// quick look at one kernel change, no whole-job runs).
func runBulkSplit(modelDir, corpus string, batchTokens, batchRows int, ncu bool) {
	m, tok, texts := bulkInputs(modelDir, corpus)
	var hf struct {
		Hidden int `json:"hidden_size"`
	}
	readJSON(m.HFConfig, &hf)
	rec := &recorder{dim: hf.Hidden}
	if _, err := bulk.Run(context.Background(), &bulk.SliceSource{Texts: texts}, discard{}, tok, []engine.Engine{rec}, bulk.Options{BatchTokens: batchTokens, BatchRows: batchRows}); err != nil {
		fail(err)
	}
	bs := rec.batches
	sort.Slice(bs, func(i, j int) bool { return bs[i].MaxLen() < bs[j].MaxLen() })
	e, err := cuda.OpenConfig(m, engine.Options{}, cuda.ConfigFromEnv(engine.Options{}))
	if err != nil {
		fail(err)
	}
	defer e.Close()
	if !ncu {
		printSplits(e, m, []*engine.Batch{bs[0], bs[len(bs)/2], bs[len(bs)-1]}, 5)
		return
	}
	for _, b := range []*engine.Batch{bs[len(bs)/2], bs[len(bs)-1]} {
		if _, err := e.Profile(b, 1); err != nil {
			fail(err)
		}
		fmt.Printf("profiled rows=%d tokens=%d max_len=%d\n", b.Rows(), b.Tokens(), b.MaxLen())
	}
}

func bulkInputs(modelDir, corpus string) (*engine.Model, *tokenizer.Tokenizer, []string) {
	m, err := engine.ResolveModel(modelDir)
	if err != nil {
		fail(err)
	}
	tok, err := tokenizer.Load(m.Tokenizer)
	if err != nil {
		fail(err)
	}
	raw, err := os.ReadFile(corpus)
	if err != nil {
		fail(err)
	}
	return m, tok.WithMaxLength(512), strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
}

type discard struct{}

func (discard) Write(int, []string, []float32, int) error { return nil }
func (discard) Close() error                              { return nil }
func (discard) Abort()                                    {}

// runBulk is the third round's profile of `embed --output` (issue 16): the
// corpus goes through pkg/bulk with a sink that discards, on 1 and 2 engines
// (the job without its cold start and file), then every batch it made is
// replayed alone (CUDA events around its graph: the GPU-bound floor of the
// job), and the stage split of the shortest-row, median and longest-row
// batches is printed with each GEMM's TFLOP/s.
func runBulk(modelDir, corpus string, batchTokens, batchRows int, runs string, replay, split bool) {
	m, tok, texts := bulkInputs(modelDir, corpus)
	open := func() *recorder {
		e, err := cuda.OpenConfig(m, engine.Options{}, cuda.ConfigFromEnv(engine.Options{}))
		if err != nil {
			fail(err)
		}
		return &recorder{Engine: e}
	}
	recs := []*recorder{open(), open()}
	defer func() {
		for _, r := range recs {
			r.Close()
		}
	}()
	fmt.Println("GPU:", recs[0].Device(), " texts:", len(texts), " batch tokens:", batchTokens, " rows:", batchRows)
	run := func(n int) bulk.Stats {
		es := make([]engine.Engine, n)
		for i := range es {
			es[i] = recs[i]
		}
		st, err := bulk.Run(context.Background(), &bulk.SliceSource{Texts: texts}, discard{}, tok, es, bulk.Options{BatchTokens: batchTokens, BatchRows: batchRows})
		if err != nil {
			fail(err)
		}
		return st
	}
	run(2) // shapes, GEMM choices, graphs
	for _, r := range recs {
		r.batches = nil
	}
	for _, f := range strings.Split(runs, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > len(recs) {
			fail(fmt.Errorf("-bulk-runs: %q", f))
		}
		for _, r := range recs {
			r.batches = nil // keep the last run's batches: one job's worth
		}
		st := run(n)
		fmt.Printf("bulk.Run, %d engine(s), discarding sink: %.3f s (first batch %v, last result %v, engines starved %v, pipelined %d)\n",
			n, st.Elapsed.Seconds(), st.FirstBatch.Round(time.Millisecond), st.LastResult.Round(time.Millisecond), st.Starved.Round(time.Millisecond), st.Pipelined)
	}
	var all []*engine.Batch
	for _, r := range recs {
		all = append(all, r.batches...)
		r.batches = nil
	}
	if !replay {
		return
	}
	e := recs[0].Engine
	var gpu float64
	type bt struct {
		b  *engine.Batch
		ms float64
	}
	var per []bt
	jobTokens := 0
	for _, b := range all {
		ms, err := e.GPUTime(b, 3)
		if err != nil {
			fail(err)
		}
		per = append(per, bt{b, ms})
		gpu += ms
		jobTokens += b.Tokens()
	}
	padded := 0
	for _, b := range all {
		x := b.Tokens() // roundBucket in pkg/engine/cuda: steps of 1/8 of the power of two below
		step := 1 << max(0, bits.Len(uint(x))-1-3)
		padded += (x + step - 1) / step * step
	}
	fmt.Printf("batches recorded: %d (%d tokens, %d in buckets: %.1f%% padding); graph replay one at a time, summed: %.3f s\n",
		len(all), jobTokens, padded, 100*float64(padded-jobTokens)/float64(jobTokens), gpu/1e3)
	if !split {
		return
	}
	sort.Slice(per, func(i, j int) bool { return per[i].b.MaxLen() < per[j].b.MaxLen() })
	picks := []*engine.Batch{per[0].b, per[len(per)/2].b, per[len(per)-1].b}
	printSplits(e, m, picks, 5)
}

// printSplits prints each batch's graph-replay time and eager stage split
// (Engine.Profile, reps runs), with each GEMM's TFLOP/s.
func printSplits(e *cuda.Engine, m *engine.Model, picks []*engine.Batch, reps int) {
	var hf struct {
		Layers int `json:"num_hidden_layers"`
		Inter  int `json:"intermediate_size"`
		Hidden int `json:"hidden_size"`
	}
	readJSON(m.HFConfig, &hf)
	inter, layers := hf.Inter, hf.Layers
	for _, b := range picks {
		gms, err := e.GPUTime(b, 20)
		if err != nil {
			fail(err)
		}
		split, err := e.Profile(b, reps)
		if err != nil {
			fail(err)
		}
		T := float64(b.Tokens())
		H := float64(hf.Hidden)
		fl := map[string]float64{
			"qkv_gemm": 2 * T * H * 3 * H, "attn_out_gemm": 2 * T * H * H,
			"ffn1_gemm": 2 * T * H * float64(inter), "ffn2_gemm": 2 * T * H * float64(inter),
		}
		var names []string
		total := 0.0
		for k, v := range split {
			names = append(names, k)
			total += v
		}
		sort.Slice(names, func(i, j int) bool { return split[names[i]] > split[names[j]] })
		fmt.Printf("batch rows=%d tokens=%d max_len=%d graph %.3f ms, eager split total %.3f ms:", b.Rows(), b.Tokens(), b.MaxLen(), gms, total)
		for _, k := range names {
			fmt.Printf(" %s %.3f (%.0f%%", k, split[k], 100*split[k]/total)
			if f, ok := fl[k]; ok {
				fmt.Printf(", %.0f TFLOP/s", f*float64(layers)/(split[k]*1e-3)/1e12)
			}
			fmt.Print(")")
		}
		fmt.Println()
	}
}
