package cuda

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/engine/checkpoint"
)

// TestPrepareWeightsMatchesFloatPath converts the fixture checkpoint (no
// GPU needed) and checks every tensor's bytes against the float32 route it
// replaced: values read as float32, then FloatToHalf (or float32 bytes).
func TestPrepareWeightsMatchesFloatPath(t *testing.T) {
	m, cfg := tinyModel(t)
	f, closeF, err := checkpoint.OpenMapped(m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	defer closeF()
	src, err := newWeightSource(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, fp16 := range []bool{true, false} {
		h, err := prepareWeights(m.Weights, cfg, fp16)
		if err != nil {
			t.Fatal(err)
		}
		// Give every tensor a distinct fake device address, then read the
		// jobs back by field.
		w := &weights{layers: make([]layerWeights, cfg.Layers)}
		byPtr := map[devPtr][]byte{}
		for i, j := range h.jobs {
			*j.dst(w) = devPtr(i + 1)
			byPtr[devPtr(i+1)] = j.data
		}
		H, I := cfg.Hidden, cfg.Intermediate
		want := func(p devPtr, names []string, n int, act bool) {
			t.Helper()
			var exp []byte
			for _, name := range names {
				v, err := src.get(name, n)
				if err != nil {
					t.Fatal(err)
				}
				if act {
					exp = append(exp, encode(v, fp16)...)
				} else {
					exp = append(exp, encodeF32(v)...)
				}
			}
			if got := byPtr[p]; string(got) != string(exp) {
				t.Fatalf("fp16=%v %v: %d bytes differ from the float32 route's %d", fp16, names, len(got), len(exp))
			}
			delete(byPtr, p)
		}
		want(w.word, []string{"embeddings.word_embeddings.weight"}, cfg.Vocab*H, true)
		want(w.pos, []string{"embeddings.position_embeddings.weight"}, cfg.MaxPos*H, true)
		want(w.embG, []string{"embeddings.LayerNorm.weight"}, H, false)
		for l := range cfg.Layers {
			p := fmt.Sprintf("encoder.layer.%d.", l)
			lw := w.layers[l]
			qkv := func(s string) []string {
				return []string{p + "attention.self.query" + s, p + "attention.self.key" + s, p + "attention.self.value" + s}
			}
			want(lw.qkvW, qkv(".weight"), H*H, true)
			want(lw.qkvB, qkv(".bias"), H, true)
			want(lw.inW, []string{p + "intermediate.dense.weight"}, I*H, true)
			want(lw.out2W, []string{p + "output.dense.weight"}, H*I, true)
			want(lw.ln2B, []string{p + "output.LayerNorm.bias"}, H, false)
		}
	}
}

// TestConcurrentOpensShareOneConversion: engines opening at once wait for
// one conversion and get the same host bytes; once both let go, the next
// open converts anew.
func TestConcurrentOpensShareOneConversion(t *testing.T) {
	t.Setenv("M3ECTL_CUDA_SHARE_WEIGHTS", "1")
	m, cfg := tinyModel(t)
	var wg sync.WaitGroup
	got := make([]preparedWeights, 4)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = prepareShared(m.Weights, cfg, true, 0) }()
	}
	wg.Wait()
	for i, pw := range got {
		if pw.err != nil || pw.h == nil {
			t.Fatalf("open %d: %v", i, pw.err)
		}
	}
	// Opens that overlapped share; all four may not have overlapped (the
	// conversion of the tiny model is quick), but entries never leak.
	for _, pw := range got {
		pw.release()
		pw.release() // twice is harmless
	}
	shared.mu.Lock()
	n := len(shared.flights)
	shared.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d conversions still held after every open let go", n)
	}
	// Held open: a second open joins the first's conversion.
	a := prepareShared(m.Weights, cfg, true, 0)
	b := prepareShared(m.Weights, cfg, true, 0)
	if a.h != b.h {
		t.Fatal("an open while another held the conversion converted again")
	}
	c := prepareShared(m.Weights, cfg, false, 0)
	if c.h == a.h {
		t.Fatal("fp32 shared the fp16 conversion")
	}
	a.release()
	b.release()
	c.release()
}

// TestEnginesOnOneGPUShareWeights runs on the GPU machine: two engines of
// the fixture model on one GPU hold one copy of the weights, embed alike,
// and the copy outlives the first engine's Close.
func TestEnginesOnOneGPUShareWeights(t *testing.T) {
	needGPU(t)
	t.Setenv("M3ECTL_CUDA_SHARE_WEIGHTS", "1")
	a, _, rows := openTiny(t, Config{})
	b, _, _ := openTiny(t, Config{})
	if a.w != b.w || a.share == nil {
		t.Fatalf("two engines on one GPU hold two copies (%p, %p)", a.w, b.w)
	}
	ea, err := a.Embed(context.Background(), engine.NewBatch(rows))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	eb, err := b.Embed(context.Background(), engine.NewBatch(rows))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ea {
		if ea[i] != eb[i] {
			t.Fatalf("float %d: %g from one engine, %g from the other", i, ea[i], eb[i])
		}
	}
	t.Setenv("M3ECTL_CUDA_SHARE_WEIGHTS", "0")
	c, _, _ := openTiny(t, Config{})
	if c.w == b.w || c.share != nil {
		t.Fatal("M3ECTL_CUDA_SHARE_WEIGHTS=0 shared the weights")
	}
}

// TestEnginesTuneApart runs on the GPU machine: two engines embedding new
// shapes at once (GEMM timing takes tuneGate's write lock, Submit its read
// lock) neither deadlock nor disagree.
func TestEnginesTuneApart(t *testing.T) {
	needGPU(t)
	a, _, rows := openTiny(t, Config{})
	b, _, _ := openTiny(t, Config{})
	batches := make([]*engine.Batch, 6)
	for i := range batches {
		sel := make([][]int32, 40+37*i) // new token counts: new buckets
		for j := range sel {
			sel[j] = rows[(i+j)%len(rows)]
		}
		batches[i] = engine.NewBatch(sel)
	}
	out := make([][][]float32, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k, e := range []*Engine{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				j := i
				if k == 1 {
					j = len(batches) - 1 - i // the other order: both meet new shapes at once
				}
				v, err := e.Embed(context.Background(), batches[j])
				if err != nil {
					errs[k] = err
					return
				}
				if out[k] == nil {
					out[k] = make([][]float32, len(batches))
				}
				out[k][j] = v
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("two engines choosing GEMMs at once did not finish in 60 s")
	}
	for k, err := range errs {
		if err != nil {
			t.Fatalf("engine %d: %v", k, err)
		}
	}
	for i := range batches {
		for j := range out[0][i] {
			if d := out[0][i][j] - out[1][i][j]; d > 2e-3 || d < -2e-3 {
				t.Fatalf("batch %d float %d: %g against %g", i, j, out[0][i][j], out[1][i][j])
			}
		}
	}
}

// TestAttentionQueueMatchesStatic runs on the GPU machine: a batch large
// enough for the work-queue attention grid embeds as on the static grid
// (M3ECTL_ATTN_QUEUE=0), packed short rows and long ones together.
func TestAttentionQueueMatchesStatic(t *testing.T) {
	needGPU(t)
	t.Setenv("M3ECTL_ATTN_QUEUE", "")
	e, _, rows := openTiny(t, Config{NoGraphs: true})
	var sel [][]int32
	for tok := 0; tok < 2*attnQueueTokens; {
		r := rows[len(sel)%len(rows)]
		if len(sel)%17 == 0 { // a long row now and then: several tiles of one row
			long := make([]int32, 0, 300)
			for len(long) < 300 {
				long = append(long, r...)
			}
			r = long[:300]
		}
		sel = append(sel, r)
		tok += len(r)
	}
	b := engine.NewBatch(sel)
	if bucketFor(b.Tokens(), b.Rows()).T < attnQueueTokens {
		t.Fatalf("batch of %d tokens is under the queue's threshold", b.Tokens())
	}
	q, err := e.Embed(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("M3ECTL_ATTN_QUEUE", "0")
	s, err := e.Embed(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("M3ECTL_ATTN_QUEUE", "")
	again, err := e.Embed(context.Background(), b) // the counters were reset for the next launch
	if err != nil {
		t.Fatal(err)
	}
	for i := range q {
		if d := q[i] - s[i]; d > 1e-3 || d < -1e-3 {
			t.Fatalf("float %d (row %d): queue %g, static %g", i, i/e.Info().Dim, q[i], s[i])
		}
		if again[i] != q[i] {
			t.Fatalf("float %d: second queue run %g, first %g", i, again[i], q[i])
		}
	}
}

func TestParallelCopy(t *testing.T) {
	src := make([]byte, 7<<20+13)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]byte, len(src)+100)
	parallelCopy([]copySeg{{dst[5 : 5+3<<20], src[:3<<20]}, {dst[5+3<<20 : 5+len(src)], src[3<<20:]}, {dst[0:0], nil}})
	if string(dst[5:5+len(src)]) != string(src) || dst[4] != 0 || dst[5+len(src)] != 0 {
		t.Fatal("copied bytes differ or spilled over")
	}
}

// tinyModel resolves the fixture model and reads its config.json.
func tinyModel(t *testing.T) (*engine.Model, bertConfig) {
	t.Helper()
	m, err := engine.ResolveModel(tinyDir + "/hf")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := readConfig(m.HFConfig)
	if err != nil {
		t.Fatal(err)
	}
	return m, cfg
}
