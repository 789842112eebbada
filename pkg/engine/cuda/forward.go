package cuda

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"unsafe"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// ffnEpilogue is the first FFN GEMM's epilogue: in fp16 cuBLASLt's fused
// GELU_BIAS (the tanh form of GELU; measured within the accuracy budget,
// docs/gpu.md) saves a pass over the [T, 3072] activations; fp32 and
// Config.ExactGELU add the bias only and run the exact erf GELU kernel.
func (e *Engine) ffnEpilogue() int {
	if e.conf.FP32 || e.conf.ExactGELU {
		return epilogueBias
	}
	return epilogueGELUBias
}

// attnThreads is the attention kernel's block: 8 warps of 16 queries for the
// tensor-core kernel, 4 warps for the simple one.
func (e *Engine) attnThreads() int {
	if e.attnMMA {
		return 256
	}
	return 128
}

// attnChunkKeys is how many keys attn_mma stages in shared memory at a time
// (KC in kernels.cu): 64 for heads up to 64 wide, else 32 (two blocks per
// SM still fit). M3ECTL_ATTN_KC overrides it (32, 64 or 128) for experiments.
func attnChunkKeys(headDim int) int {
	switch v := envInt("M3ECTL_ATTN_KC", 0); v {
	case 32, 64, 128:
		return v
	}
	if headDim > 64 {
		return 32
	}
	return 64
}

// funcAttrMaxDynamicSmem is CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
const funcAttrMaxDynamicSmem = 8

// attnSmemBytes is attn_mma's dynamic shared memory (ATTN_SMEM in
// kernels.cu): K and V chunks two stages deep, Q of two heads, and the row
// of every key of a tile.
func attnSmemBytes(headDim, maxPos, kc int) int {
	pitch := headDim + 8
	kmax := (maxPos + 63) / 64 * 64
	return 2*(2*kc*pitch*2) + 2*tileQueries*pitch*2 + 4*kmax
}

// attnHeadsPerBlock is how many heads one attention block walks for bucket
// bk: as many as still leave about one full wave of blocks (two per SM, 5%
// short allowed) for the tiles the bucket's tokens make at least, so that
// big batches pay each block's start-up once for several heads and small
// ones keep every head in parallel. On the H200, 64 x 128 tokens: 1 head
// 0.48 ms, 2 heads 0.46, 3 heads 0.42 (this rule's pick), 4 heads 0.59
// (docs/gpu-notes.md). M3ECTL_ATTN_HPB overrides it (a divisor of the
// heads) for experiments.
func (e *Engine) attnHeadsPerBlock(bk bucket) int {
	heads := e.cfg.Heads
	if !e.attnMMA {
		return 1
	}
	if v, err := strconv.Atoi(os.Getenv("M3ECTL_ATTN_HPB")); err == nil && v > 0 && heads%v == 0 {
		return v
	}
	tiles := (bk.T + tileQueries - 1) / tileQueries
	best := 1
	for d := 2; d <= heads; d++ {
		if e.attnQueue(bk) {
			// Blocks take items from a queue: as many heads per item as
			// still give every block slot one (the 24 x 1024 model's bulk
			// batches on the H200: 4 heads at 16 k tokens, 1.95 ms of
			// attention against 1.96 with 1 and 2.33 on the static grid).
			if heads%d == 0 && tiles*heads/d >= attnBlocksPerSM*e.dev.SMs {
				best = d
			}
		} else if heads%d == 0 && 20*tiles*heads/d >= 19*2*e.dev.SMs {
			best = d
		}
	}
	return best
}

// attnBlocksPerSM is how many attn_mma blocks an SM holds (ATTN_MINB: the
// register budget is cut for two; the shared memory of two fits).
const attnBlocksPerSM = 2

// attnQueue says whether attn_mma's blocks take their (tile, head group)
// items from a queue (a grid of one wave) rather than one each from a grid
// of all of them; M3ECTL_ATTN_QUEUE=0 is the static grid of before.
func (e *Engine) attnQueue(bk bucket) bool {
	return e.attnMMA && bk.T >= attnQueueTokens && os.Getenv("M3ECTL_ATTN_QUEUE") != "0"
}

// attnQueueTokens: smaller buckets keep the static grid. Their few items
// fit one wave anyway, and serving's small batches (latency-bound, the
// queue's atomics on their critical path) were not measured faster.
const attnQueueTokens = 4096

// attnGrid is attn_mma's grid and queue argument for bucket bk with hpb
// heads per block.
func (e *Engine) attnGrid(bk bucket, hpb int) ([3]int, devPtr) {
	groups := e.cfg.Heads / hpb
	if !e.attnQueue(bk) {
		return [3]int{groups, bk.tiles(), 1}, 0
	}
	return [3]int{min(attnBlocksPerSM*e.dev.SMs, groups*bk.tiles()), 1, 1}, e.buf.queue
}

// launchAttn queues one layer's attention (attn_mma or attn_simple).
func (e *Engine) launchAttn(bk bucket, hpb int, in devPtr, tiles, counts, pos int, scale float32) error {
	b := &e.buf
	if !e.attnMMA {
		return e.l.launchDep(e.fnAttn, [3]int{e.cfg.Heads, bk.tiles(), 1}, [3]int{e.attnThreads(), 1, 1}, 0, b.ctx, b.qkv, in+devPtr(tiles), in+devPtr(counts+4), in+devPtr(pos), scale)
	}
	grid, queue := e.attnGrid(bk, hpb)
	return e.l.launchDep(e.fnAttn, grid, [3]int{e.attnThreads(), 1, 1}, e.attnSmem, b.ctx, b.qkv, in+devPtr(tiles), in+devPtr(counts+4), in+devPtr(pos), scale, hpb, queue)
}

// marker records a named point on the stream (the profiler); nil in normal runs.
type marker func(stage string) error

// gemmShape is one of a layer's GEMMs: destination, input, weight, bias
// and residual (0: none) buffers, m × n × k and the epilogue.
type gemmShape struct {
	d, x, w, bias, c devPtr
	m, n, k, epi     int
}

// residMode says which GEMMs add the residual themselves (cuBLASLt's C
// matrix, beta = 1: D = X·Wᵀ + bias + hidden), so that the LayerNorm after
// them reads one tensor instead of two (ln_res instead of add_ln); the sum
// is rounded to fp16 once before the LayerNorm, as PyTorch's fp16
// BertLayer rounds it. 1 (the default): FFN2 only, in buckets of
// residTokens or more; 2: the attention output too; 0
// (M3ECTL_CUDA_RESID_GEMM=0): neither, as before. On the H200 (24 x 1024,
// 16 k tokens) the C read cost the attention-output GEMM (K = 1024) as much
// as its LayerNorm saved, FFN2's (K = 4096) nothing; serving's small
// batches were 1-2% slower with it, so they keep add_ln.
var residMode = func() int {
	switch os.Getenv("M3ECTL_CUDA_RESID_GEMM") {
	case "0":
		return 0
	case "2":
		return 2
	}
	return 1
}()

// residTokens: smaller buckets keep add_ln (see residMode).
// M3ECTL_CUDA_RESID_TOKENS=1 fuses in every bucket (the GPU tests' check
// of the fused path on the fixture's small batches).
var residTokens = envInt("M3ECTL_CUDA_RESID_TOKENS", 4096)

// resid is the C matrix of the GEMMs before a LayerNorm in a bucket of T
// tokens: the residual stream, or 0 when add_ln adds it.
func (e *Engine) resid(T int) devPtr {
	if residMode > 0 && T >= residTokens && e.fnLN != 0 {
		return e.buf.hidden
	}
	return 0
}

// residPair is the C matrix of the attention-output and FFN2 GEMMs.
func (e *Engine) residPair(T int) (attnOut, ffn2 devPtr) {
	r := e.resid(T)
	if residMode == 2 {
		return r, r
	}
	return 0, r
}

// layerGemms lists a layer's four GEMMs for T tokens (QKV, attention
// output, FFN1, FFN2) with the given weights and biases, in that order.
func (e *Engine) layerGemms(T int, w, bias [4]devPtr) [4]gemmShape {
	H, I, b := e.cfg.Hidden, e.cfg.Intermediate, &e.buf
	r1, r2 := e.residPair(T)
	return [4]gemmShape{
		{b.qkv, b.hidden, w[0], bias[0], 0, 3 * H, T, H, epilogueBias},
		{b.tmp, b.ctx, w[1], bias[1], r1, H, T, H, epilogueBias},
		{b.ffn, b.hidden, w[2], bias[2], 0, I, T, H, e.ffnEpilogue()},
		{b.tmp, b.ffn, w[3], bias[3], r2, H, T, I, epilogueBias},
	}
}

// planGemms chooses (and times, see gemmer.tune) the algorithm of every GEMM
// shape of bucket bk, on layer 0's weights and the real buffers. It runs
// before a graph capture, never inside one.
func (e *Engine) planGemms(bk bucket) error {
	lw := e.w.layers[0]
	st := e.l.stream
	for _, s := range e.layerGemms(bk.T, [4]devPtr{lw.qkvW, lw.outW, lw.inW, lw.out2W}, [4]devPtr{lw.qkvB, lw.outB, lw.inB, lw.out2B}) {
		if e.conf.NoTune {
			if _, err := e.gemm.plan(s.m, s.n, s.k, s.epi, s.c != 0); err != nil {
				return err
			}
			continue
		}
		if err := e.gemm.tune(st, s.d, s.x, s.w, s.bias, s.c, s.m, s.n, s.k, s.epi); err != nil {
			e.gemm.releaseHold()
			return err
		}
	}
	e.gemm.releaseHold()
	algos.save()
	return nil
}

// enqueue puts the whole forward pass of bucket bk on the stream: input
// copy from the first slot's pinned buffer, embeddings, the layers, pooling
// and the result copy back into it.
func (e *Engine) enqueue(bk bucket, mark marker) error {
	if err := e.copyIn(bk, e.slots[0].in); err != nil {
		return err
	}
	if err := e.enqueueKernels(bk, mark, partAll); err != nil {
		return err
	}
	return e.copyOut(e.slots[0].out, e.slots[0].rows)
}

// copyIn queues the copy of bucket bk's packed input block from h.
func (e *Engine) copyIn(bk bucket, h pinned) error {
	return cuCheck(call(drv.memcpyHtoDAsync, uintptr(e.buf.dIn), uintptr(h.p), uintptr(e.buf.inputBytes(bk)), e.l.stream), "cuMemcpyHtoDAsync")
}

// copyOut queues the copy of the batch's rows pooled embeddings into h.
func (e *Engine) copyOut(h pinned, rows int) error {
	return cuCheck(call(drv.memcpyDtoHAsync, uintptr(h.p), uintptr(e.buf.out), uintptr(rows*e.cfg.Hidden*4), e.l.stream), "cuMemcpyDtoHAsync")
}

// Parts of the forward pass: the whole, or the head (embeddings and the
// layers before the tail) and the tail (the last tailLayers layers and
// pooling), between which a pipelined batch records its "nearly done"
// event.
const (
	partAll = iota
	partHead
	partTail
)

// enqueueKernels puts part of bucket bk's forward pass (no copies) on the
// stream.
func (e *Engine) enqueueKernels(bk bucket, mark marker, part int) error {
	if mark == nil {
		mark = func(string) error { return nil }
	}
	c, b, st := e.cfg, &e.buf, e.l.stream
	H, I, T := c.Hidden, c.Intermediate, bk.T
	pos, offs, tiles, counts := layout(bk)
	in := b.dIn
	layers := e.w.layers
	split := len(layers) - e.tailLayers()
	switch part {
	case partHead:
		layers = layers[:split]
	case partTail:
		layers = layers[split:]
	}
	ln, lnGrid := [3]int{e.lnThreads, 1, 1}, [3]int{T, 1, 1}
	addGrid := lnGrid
	if e.lnWarp {
		ln, lnGrid = [3]int{256, 1, 1}, [3]int{(T + 7) / 8, 1, 1}
		addGrid = [3]int{(T + 8*e.lnTPW - 1) / (8 * e.lnTPW), 1, 1}
	}
	errs := func(errs ...error) error {
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
	if part != partTail {
		if err := errs(mark("start"),
			e.l.launch(e.fnEmb, lnGrid, ln, 0, b.hidden, in, in+devPtr(pos), e.w.word, e.w.pos, e.w.type0, e.w.embG, e.w.embB, c.Eps, T),
			mark("embed")); err != nil {
			return err
		}
	}
	ffnEpi := e.ffnEpilogue()
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	g := e.gemm
	hpb := e.attnHeadsPerBlock(bk)
	// The LayerNorm after a GEMM: ln_res when the GEMM added the residual.
	r1, r2 := e.residPair(T)
	ln1, ln2 := e.fnAddLN, e.fnAddLN
	if r1 != 0 {
		ln1 = e.fnLN
	}
	if r2 != 0 {
		ln2 = e.fnLN
	}
	for _, lw := range layers {
		err := errs(
			g.run(st, b.qkv, b.hidden, lw.qkvW, lw.qkvB, 0, 3*H, T, H, epilogueBias), mark("qkv_gemm"),
			e.launchAttn(bk, hpb, in, tiles, counts, pos, scale), mark("attention"),
			g.run(st, b.tmp, b.ctx, lw.outW, lw.outB, r1, H, T, H, epilogueBias), mark("attn_out_gemm"),
			e.l.launchDep(ln1, addGrid, ln, 0, b.hidden, b.tmp, lw.ln1G, lw.ln1B, c.Eps, T), mark("add_ln"),
			g.run(st, b.ffn, b.hidden, lw.inW, lw.inB, 0, I, T, H, ffnEpi), mark("ffn1_gemm"),
		)
		if err != nil {
			return err
		}
		if ffnEpi != epilogueGELUBias {
			n := T * I
			if err := errs(e.l.launchDep(e.fnGELU, [3]int{(n/2 + 255) / 256, 1, 1}, [3]int{256, 1, 1}, 0, b.ffn, n), mark("gelu")); err != nil {
				return err
			}
		}
		if err := errs(
			g.run(st, b.tmp, b.ffn, lw.out2W, lw.out2B, r2, H, T, I, epilogueBias), mark("ffn2_gemm"),
			e.l.launchDep(ln2, addGrid, ln, 0, b.hidden, b.tmp, lw.ln2G, lw.ln2B, c.Eps, T), mark("add_ln"),
		); err != nil {
			return err
		}
	}
	if part == partHead {
		return nil
	}
	mode := 0
	switch e.pool.Mode {
	case engine.PoolCLS:
		mode = 1
	case engine.PoolMax:
		mode = 2
	}
	norm := 0
	if e.pool.Normalize {
		norm = 1
	}
	// The bucket has room for T rows; pool's blocks stride over the real
	// ones (the count is in the input block).
	poolGrid := min(bk.N, 4*e.dev.SMs)
	return errs(e.l.launchDep(e.fnPool, [3]int{poolGrid, 1, 1}, [3]int{256, 1, 1}, 0, b.out, b.hidden, in+devPtr(offs), in+devPtr(counts), mode, norm), mark("pool"))
}

// tailLayers is how many of the last layers run after a pipelined batch's
// "nearly done" event: a quarter of them (3 of BERT-base's 12, ~0.12 ms of a
// 16-row batch on the H200), time enough for the scheduler to cut, stage
// and queue the next batch before the GPU runs dry.
// M3ECTL_CUDA_TAIL_LAYERS overrides it for experiments.
func (e *Engine) tailLayers() int {
	n := len(e.w.layers)
	t := envInt("M3ECTL_CUDA_TAIL_LAYERS", max(1, n/4))
	return min(max(t, 0), n)
}

// Profile runs batch b reps times without graphs, with a CUDA event after
// every stage, and returns the milliseconds per stage (summed over layers,
// averaged over reps) — the per-layer time split of the report.
func (e *Engine) Profile(b *engine.Batch, reps int) (map[string]float64, error) {
	if err := b.Validate(e.cfg.MaxPos, e.cfg.Vocab); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	if err := e.exclusive(func() error { return e.profile(b, reps, out) }); err != nil {
		return nil, err
	}
	return out, nil
}

// profile is Profile with the engine to itself.
func (e *Engine) profile(b *engine.Batch, reps int, out map[string]float64) error {
	bk := bucketFor(b.Tokens(), b.Rows())
	if err := e.stage(0, b, bk); err != nil {
		return err
	}
	if err := e.planGemms(bk); err != nil {
		return err
	}
	for r := 0; r < reps+1; r++ {
		type ev struct {
			name string
			h    uintptr
		}
		var evs []ev
		mark := func(name string) error {
			var h uintptr
			if err := cuCheck(call(drv.eventCreate, ptr(&h), 0), "cuEventCreate"); err != nil {
				return err
			}
			evs = append(evs, ev{name, h})
			return cuCheck(call(drv.eventRecord, h, e.l.stream), "cuEventRecord")
		}
		err := e.enqueue(bk, mark)
		if err == nil {
			err = cuCheck(call(drv.streamSynchronize, e.l.stream), "cuStreamSynchronize")
		}
		for i := 1; i < len(evs) && err == nil; i++ {
			var ms float32
			if err = cuCheck(call(drv.eventElapsed, uintptr(unsafe.Pointer(&ms)), evs[i-1].h, evs[i].h), "cuEventElapsedTime"); err == nil && r > 0 {
				out[evs[i].name] += float64(ms) / float64(reps)
			}
		}
		for _, v := range evs {
			call(drv.eventDestroy, v.h)
		}
		if err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	return nil
}
