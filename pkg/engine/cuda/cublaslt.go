package cuda

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"unsafe"
)

// cuBLASLt entry points: the engine's GEMMs, with the bias (and optionally
// GELU) fused into the epilogue.
var lt struct {
	create, destroy, descCreate, descDestroy, descSetAttr uintptr
	layoutCreate, layoutDestroy, prefCreate, prefDestroy  uintptr
	prefSetAttr, heuristic, matmul                        uintptr
}

func bindLt(h uintptr) error {
	for _, b := range []struct {
		dst  *uintptr
		name string
	}{
		{&lt.create, "cublasLtCreate"}, {&lt.destroy, "cublasLtDestroy"},
		{&lt.descCreate, "cublasLtMatmulDescCreate"}, {&lt.descDestroy, "cublasLtMatmulDescDestroy"},
		{&lt.descSetAttr, "cublasLtMatmulDescSetAttribute"},
		{&lt.layoutCreate, "cublasLtMatrixLayoutCreate"}, {&lt.layoutDestroy, "cublasLtMatrixLayoutDestroy"},
		{&lt.prefCreate, "cublasLtMatmulPreferenceCreate"}, {&lt.prefDestroy, "cublasLtMatmulPreferenceDestroy"},
		{&lt.prefSetAttr, "cublasLtMatmulPreferenceSetAttribute"},
		{&lt.heuristic, "cublasLtMatmulAlgoGetHeuristic"}, {&lt.matmul, "cublasLtMatmul"},
	} {
		p, err := sym(h, b.name)
		if err != nil {
			return err
		}
		*b.dst = p
	}
	if v, err := sym(h, "cublasLtGetVersion"); err == nil {
		ltVersion = call(v)
	}
	return nil
}

// ltVersion is cublasLtGetVersion(), part of the algorithm cache's key.
var ltVersion int

// cuBLASLt and CUDA enum values (cublasLt.h, library_types.h).
const (
	cudaR32F          = 0
	cudaR16F          = 2
	computeF32        = 68 // CUBLAS_COMPUTE_32F
	descComputeType   = 0
	descTransA        = 3
	descTransB        = 4
	descEpilogue      = 7
	descBiasPointer   = 8
	opT               = 1
	prefMaxWorkspace  = 1
	epilogueDefault   = 1
	epilogueBias      = 4
	epilogueGELUBias  = 36
	gemmWorkspaceSize = 32 << 20
)

// heuristicResult mirrors cublasLtMatmulHeuristicResult_t.
type heuristicResult struct {
	algo      [8]uint64
	workspace uintptr
	state     int32
	waves     float32
	reserved  [4]int32
}

func ltCheck(code int, op string) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("%s: cuBLAS status %d", op, code)
}

// tuneGate keeps GEMM timing (write lock, gemmer.tune) apart from every
// engine's enqueueing (read lock, Submit) in this process.
var tuneGate sync.RWMutex

// gemmKey identifies one GEMM shape; plans are cached per key. acc: the
// product is added to a C matrix (beta = 1, the residual), timed apart.
type gemmKey struct {
	m, n, k, epi int
	acc          bool
}

// gemmPlan is a ready-to-run cuBLASLt matmul: descriptors and chosen algo.
type gemmPlan struct {
	desc, a, b, c uintptr
	algo          heuristicResult
	cands         []heuristicResult // the heuristic's top algorithms, best guess first
	tuned         bool
}

// gemmer runs D[n×m] = X[n×k] · W[m×k]ᵀ + bias (row-major, PyTorch Linear
// layout) through cuBLASLt, in column-major terms D'(m×n) = Wᵀ'(m×k)·X'(k×n).
type gemmer struct {
	dev       deviceInfo
	handle    uintptr
	dtype     int
	workspace devPtr
	plans     map[gemmKey]*gemmPlan
	alpha     float32
	beta      float32 // 0: D = X·Wᵀ + bias
	one       float32 // 1: D = X·Wᵀ + bias + C
	hold      devPtr  // scratch that tune clears to keep the GPU busy while it queues timed runs
}

func newGemmer(dtype int, dev deviceInfo) (*gemmer, error) {
	g := &gemmer{dtype: dtype, dev: dev, plans: map[gemmKey]*gemmPlan{}, alpha: 1, one: 1}
	if err := ltCheck(call(lt.create, ptr(&g.handle)), "cublasLtCreate"); err != nil {
		return nil, err
	}
	ws, err := memAlloc(gemmWorkspaceSize)
	if err != nil {
		call(lt.destroy, g.handle)
		return nil, err
	}
	g.workspace = ws
	return g, nil
}

func (g *gemmer) close() {
	for _, p := range g.plans {
		call(lt.descDestroy, p.desc)
		call(lt.layoutDestroy, p.a)
		call(lt.layoutDestroy, p.b)
		call(lt.layoutDestroy, p.c)
	}
	g.plans = nil
	memFree(g.workspace)
	memFree(g.hold)
	g.hold = 0
	if g.handle != 0 {
		call(lt.destroy, g.handle)
		g.handle = 0
	}
}

func (g *gemmer) plan(m, n, k, epi int, acc bool) (*gemmPlan, error) {
	key := gemmKey{m, n, k, epi, acc}
	if p, ok := g.plans[key]; ok {
		return p, nil
	}
	p := &gemmPlan{}
	if err := ltCheck(call(lt.descCreate, ptr(&p.desc), computeF32, cudaR32F), "cublasLtMatmulDescCreate"); err != nil {
		return nil, err
	}
	tA, e := int32(opT), uint32(epi)
	call(lt.descSetAttr, p.desc, descTransA, ptr(&tA), 4)
	if err := ltCheck(call(lt.descSetAttr, p.desc, descEpilogue, ptr(&e), 4), "set epilogue"); err != nil {
		return nil, err
	}
	if err := ltCheck(call(lt.layoutCreate, ptr(&p.a), uintptr(g.dtype), uintptr(k), uintptr(m), uintptr(k)), "layout A"); err != nil {
		return nil, err
	}
	if err := ltCheck(call(lt.layoutCreate, ptr(&p.b), uintptr(g.dtype), uintptr(k), uintptr(n), uintptr(k)), "layout B"); err != nil {
		return nil, err
	}
	if err := ltCheck(call(lt.layoutCreate, ptr(&p.c), uintptr(g.dtype), uintptr(m), uintptr(n), uintptr(m)), "layout C"); err != nil {
		return nil, err
	}
	var pref uintptr
	if err := ltCheck(call(lt.prefCreate, ptr(&pref)), "preference"); err != nil {
		return nil, err
	}
	defer call(lt.prefDestroy, pref)
	ws := uint64(gemmWorkspaceSize)
	call(lt.prefSetAttr, pref, prefMaxWorkspace, ptr(&ws), 8)
	// The bias pointer must be set for the heuristic to consider bias
	// epilogues; any aligned device address will do for the query.
	bias := uint64(g.workspace)
	call(lt.descSetAttr, p.desc, descBiasPointer, ptr(&bias), 8)
	var count int32
	cands := make([]heuristicResult, maxTuneAlgos)
	if err := ltCheck(call(lt.heuristic, g.handle, p.desc, p.a, p.b, p.c, p.c, pref, uintptr(maxTuneAlgos), uintptr(unsafe.Pointer(&cands[0])), ptr(&count)), "cublasLtMatmulAlgoGetHeuristic"); err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, fmt.Errorf("cuBLASLt has no algorithm for %dx%dx%d epilogue %d", m, n, k, epi)
	}
	for _, c := range cands[:count] {
		if c.state == 0 && c.workspace <= gemmWorkspaceSize {
			p.cands = append(p.cands, c)
		}
	}
	if len(p.cands) == 0 {
		return nil, fmt.Errorf("cuBLASLt has no usable algorithm for %dx%dx%d", m, n, k)
	}
	p.algo = p.cands[0]
	g.plans[key] = p
	return p, nil
}

// maxTuneAlgos is how many of the heuristic's algorithms tune times
// (M3ECTL_GEMM_ALGOS overrides it for experiments). 32 rather than 8 took
// batch 1 from 0.39-0.41 to 0.37 ms on the H200 and left the large batches
// as they were; the extra tuning costs a few ms on each bucket's first use.
var maxTuneAlgos = envInt("M3ECTL_GEMM_ALGOS", 32)

// tuneReps is how many timed runs decide between two algorithms
// (M3ECTL_GEMM_TUNE_REPS overrides it for experiments).
var tuneReps = envInt("M3ECTL_GEMM_TUNE_REPS", 3)

// tuneHoldBytes is the scratch tune clears before each candidate's timed
// runs (M3ECTL_GEMM_TUNE_HOLD_MB, 0: none): 256 MB is about 60 µs of the
// H200's bandwidth, longer than queueing the runs takes. With it the
// choices took the graph replay of 16 short rows from 0.535 to 0.505 ms, 32
// rows from 0.597 to 0.548 and 64 from 0.727 to 0.698 (H200, CUDA events;
// 128 rows and up unchanged); held only while a new shape is timed.
var tuneHoldBytes = holdMB() << 20

func holdMB() int {
	if v, err := strconv.Atoi(os.Getenv("M3ECTL_GEMM_TUNE_HOLD_MB")); err == nil && v >= 0 {
		return v
	}
	return 256
}

// envInt reads a positive integer setting from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// releaseHold frees tune's scratch once a bucket's shapes are timed.
func (g *gemmer) releaseHold() {
	memFree(g.hold)
	g.hold = 0
}

// tune times each candidate algorithm of the plan on the real operands (on
// stream, outside any graph capture) and keeps the fastest: the heuristic's
// first choice is often not the fastest on small or skinny shapes.
func (g *gemmer) tune(stream uintptr, d, x, w, bias, c devPtr, m, n, k, epi int) error {
	p, err := g.plan(m, n, k, epi, c != 0)
	if err != nil || p.tuned || len(p.cands) < 2 {
		return err
	}
	key := g.algoKey(m, n, k, epi)
	if c != 0 {
		key += "|acc"
	}
	if r, ok := algos.get(key); ok {
		p.algo = r
		if g.run(stream, d, x, w, bias, c, m, n, k, epi) == nil {
			p.tuned = true
			return nil
		}
		algos.drop(key) // not valid here after all: time the candidates again
		p.algo = p.cands[0]
	}
	// Time the candidates with the GPU to ourselves: engines of this process
	// enqueue only under tuneGate's read lock (Submit), and whatever they
	// queued before finishes first. Two engines tuning or running at once
	// (embed --output opens two per GPU) had their timings mixed, and the
	// choices, kept on disk, with them.
	tuneGate.Lock()
	defer tuneGate.Unlock()
	if err := cuCheck(call(drv.ctxSynchronize), "cuCtxSynchronize"); err != nil {
		return err
	}
	sw, err := newStopwatch()
	if err != nil {
		return err
	}
	defer sw.destroy()
	best, bestMs := 0, float32(math.MaxFloat32)
	if tuneHoldBytes > 0 && g.hold == 0 {
		g.hold, _ = memAlloc(tuneHoldBytes) // without it the runs are timed as launched
	}
	for i := range p.cands {
		p.algo = p.cands[i]
		if err := g.run(stream, d, x, w, bias, c, m, n, k, epi); err != nil {
			continue // an algorithm the heuristic offered but that cannot run here
		}
		if g.hold != 0 {
			// A small GEMM runs faster than the host launches it, so timed
			// back to back as launched the candidates all measure the
			// launch rate. Clearing a large scratch buffer first holds the
			// stream while the timed runs queue behind it.
			call(drv.memsetD8Async, uintptr(g.hold), 0, uintptr(tuneHoldBytes), stream)
		}
		ms, err := sw.time(stream, func() error {
			for r := 0; r < tuneReps; r++ {
				_ = g.run(stream, d, x, w, bias, c, m, n, k, epi)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if ms < bestMs {
			best, bestMs = i, ms
		}
	}
	p.algo = p.cands[best]
	p.tuned = true
	algos.put(key, p.algo)
	return nil
}

// run enqueues D = X·Wᵀ (+bias, GELU per epi) (+C when c is not 0: the
// residual, beta = 1) on stream; m is W's rows (out features), n the
// tokens, k the in features. C has D's layout and must not be D.
func (g *gemmer) run(stream uintptr, d, x, w, bias, c devPtr, m, n, k, epi int) error {
	p, err := g.plan(m, n, k, epi, c != 0)
	if err != nil {
		return err
	}
	b := uint64(bias)
	call(lt.descSetAttr, p.desc, descBiasPointer, ptr(&b), 8)
	beta, cm := &g.beta, d
	if c != 0 {
		beta, cm = &g.one, c
	}
	code := call(lt.matmul, g.handle, p.desc, uintptr(unsafe.Pointer(&g.alpha)), uintptr(w), p.a, uintptr(x), p.b,
		uintptr(unsafe.Pointer(beta)), uintptr(cm), p.c, uintptr(d), p.c, ptr(&p.algo.algo), uintptr(g.workspace), gemmWorkspaceSize, stream)
	return ltCheck(code, fmt.Sprintf("cublasLtMatmul %dx%dx%d", m, n, k))
}
