package cuda

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "embed"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

//go:embed kernels.cu
var kernelSource string

// Config holds the engine's tuning switches beyond engine.Options; the
// defaults are what serve uses. The benchmark flips them to measure each.
type Config struct {
	FP32      bool // compute in fp32 (for checking) instead of fp16
	ExactGELU bool // fp16: exact erf GELU kernel instead of cuBLASLt's fused GELU_BIAS epilogue (tanh form)
	NoGraphs  bool // launch kernels one by one instead of replaying CUDA graphs
	MaxGraphs int  // captured graphs kept per engine; 0: 512
	NoTune    bool // take cuBLASLt's first heuristic choice instead of timing its top algorithms
	// CaptureFirst captures a shape's graph on its first batch instead of
	// its second (M3ECTL_CUDA_CAPTURE_FIRST=1; the benchmark's timings).
	CaptureFirst bool
	// Sync is how Await waits for a batch: "tail" (the default) sleeps on
	// the batch's nearly-done event, then polls for the end for up to
	// tailSpin before sleeping again; "block" sleeps on the end alone;
	// "spin" lets the driver spin for the whole batch (M3ECTL_CUDA_SYNC).
	Sync string
	// Pipeline makes Pipelined report true, so the scheduler overlaps
	// batches on the instance (M3ECTL_CUDA_PIPELINE=1). Off by default:
	// on the H200 it did not beat one batch at a time (docs/gpu.md).
	Pipeline bool
	// NoText leaves the embeddings' JSON text to the server's CPU
	// (M3ECTL_CUDA_TEXT=0; textfmt.go).
	NoText bool
}

// ConfigFromEnv reads o.Precision, M3ECTL_CUDA_GELU=erf and M3ECTL_CUDA_GRAPHS=0.
func ConfigFromEnv(o engine.Options) Config {
	return Config{
		FP32:      strings.EqualFold(o.Precision, "fp32"),
		ExactGELU: os.Getenv("M3ECTL_CUDA_GELU") == "erf",
		NoGraphs:  os.Getenv("M3ECTL_CUDA_GRAPHS") == "0",
		// The benchmark times graph replays from the first run on.
		CaptureFirst: os.Getenv("M3ECTL_CUDA_CAPTURE_FIRST") == "1",
		Pipeline:     os.Getenv("M3ECTL_CUDA_PIPELINE") == "1",
		Sync:         os.Getenv("M3ECTL_CUDA_SYNC"),
		NoText:       os.Getenv("M3ECTL_CUDA_TEXT") == "0",
	}
}

// Engine runs one BERT encoder on one GPU with its own stream and buffers.
// Like every engine.Engine it serves one goroutine at a time.
type Engine struct {
	mu                                     sync.Mutex
	cold                                   atomic.Uint64 // ColdRuns
	cfg                                    bertConfig
	conf                                   Config
	pool                                   engine.Pooling
	dev                                    deviceInfo
	ctx                                    uintptr
	devNo                                  int32
	l                                      launcher
	mod                                    *module
	gemm                                   *gemmer
	w                                      *weights
	share                                  *devKey // set when w is the GPU's shared copy
	elem                                   int     // bytes per activation element
	lnThreads                              int
	lnWarp                                 bool
	lnTPW                                  int // tokens per warp in add_ln
	fnEmb, fnAddLN, fnGELU, fnPool, fnAttn uintptr
	fnLN                                   uintptr // ln_res: LayerNorm of a GEMM output that holds the residual
	attnSmem                               int     // attn_mma's dynamic shared memory, bytes
	attnMMA                                bool
	buf                                    buffers
	graphs                                 map[graphKey]uintptr
	slots                                  [2]slot // pipelined batches in flight (Submit/Await); Embed uses them too
	slotFree                               *sync.Cond
	rowsHint                               int // engine.Options.MaxBatchRows: the output buffers' first size
	seen                                   map[bucket]int
	planned                                map[bucket]bool // GEMMs chosen (Submit, before tuneGate's read lock)
	split                                  startSplit
	textMod                                *module // the JSON text kernel (textfmt.go); nil when off
	fnText                                 uintptr
	texts                                  textPool
	closed                                 bool
}

var kernelNames = []string{"embed_ln", "add_ln", "ln_res", "gelu", "pool", "attn_simple"}

// Open loads the model at m onto GPU o.Device.
func Open(m *engine.Model, o engine.Options) (engine.Engine, error) {
	return OpenConfig(m, o, ConfigFromEnv(o))
}

// OpenConfig is Open with explicit tuning switches.
func OpenConfig(m *engine.Model, o engine.Options, conf Config) (*Engine, error) {
	start := time.Now()
	if m.HFConfig == "" || m.Weights == "" {
		if err := load(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: the cuda engine needs config.json and model.safetensors or pytorch_model.bin (a Hugging Face / sentence-transformers folder); use --engine cpu for ONNX files", m.Path)
	}
	cfg, err := readConfig(m.HFConfig)
	if err != nil {
		return nil, err
	}
	// The weights are mapped and converted on every core while the driver
	// initialises, the context is made and the kernels load: the two were
	// most of the cold start one after the other.
	weightsCh := make(chan preparedWeights, 1)
	go func() { weightsCh <- prepareShared(m.Weights, cfg, !conf.FP32, o.Device) }()
	if err := load(); err != nil {
		return nil, err
	}
	libs := time.Since(start)
	if conf.MaxGraphs == 0 {
		conf.MaxGraphs = 512
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	e := &Engine{cfg: cfg, conf: conf, pool: m.Pooling, graphs: map[graphKey]uintptr{}, elem: 2, seen: map[bucket]int{}, planned: map[bucket]bool{}}
	e.slotFree = sync.NewCond(&e.mu)
	if conf.FP32 {
		e.elem = 4
	}
	e.split.libs = libs
	if err := e.init(m, o, weightsCh); err != nil {
		if !e.split.weightsTaken {
			go func() { pw := <-weightsCh; pw.release() }()
		}
		e.release()
		return nil, err
	}
	e.split.total = time.Since(start)
	slog.Debug("cuda engine ready", "gpu", e.dev.Name, "sm", fmt.Sprintf("%d.%d", e.dev.Major, e.dev.Minor),
		"layers", cfg.Layers, "hidden", cfg.Hidden, "fp32", conf.FP32, "weights_mb", e.w.bytes>>20,
		"total", ms(e.split.total), "libs_and_cuinit", ms(e.split.libs), "context", ms(e.split.context),
		"kernel_compile", ms(e.split.kernels), "buffers_and_gemm_prewarm", ms(e.split.prewarm), "weights_map_and_convert", ms(e.split.convert),
		"weights_wait", ms(e.split.wait), "weights_upload", ms(e.split.upload), "weights_uploaded", e.split.uploaded,
		"gemm_prewarm_beside_upload", ms(e.split.prewarmBeside))
	return e, nil
}

// startSplit is where an engine's start-up time went (embed -v and serve -v
// print it): the parts overlap where noted.
type startSplit struct {
	total, libs, context, kernels time.Duration
	convert                       time.Duration // on other goroutines, alongside libs, context and kernels
	wait, upload, prewarm         time.Duration
	prewarmBeside                 time.Duration // the GEMM prewarm on its own thread, beside the upload
	// uploaded: this engine copied the weights (false: it shares another
	// engine's copy on the same GPU); weightsTaken: init got them.
	uploaded, weightsTaken bool
}

func ms(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }

func (e *Engine) init(m *engine.Model, o engine.Options, weightsCh <-chan preparedWeights) (err error) {
	t := time.Now()
	if e.devNo, e.dev, err = getDevice(o.Device); err != nil {
		return fmt.Errorf("GPU %d: %w", o.Device, err)
	}
	if err := cuCheck(call(drv.primaryCtxRetain, ptr(&e.ctx), uintptr(e.devNo)), "cuDevicePrimaryCtxRetain"); err != nil {
		return err
	}
	if err := e.setCurrent(); err != nil {
		return err
	}
	if err := cuCheck(call(drv.streamCreate, ptr(&e.l.stream), 1), "cuStreamCreate"); err != nil {
		return err
	}
	// Waiting on a blocking-sync event puts the thread to sleep until the
	// GPU is done; cuStreamSynchronize on the primary context's default
	// scheduling spins a core for the whole batch, CPU the server then
	// lacks for HTTP and encoding. M3ECTL_CUDA_SYNC=spin restores spinning.
	evFlags := uintptr(eventDisableTiming | eventBlockingSync)
	if e.conf.Sync == "spin" {
		evFlags = eventDisableTiming
	}
	for i := range e.slots {
		for _, ev := range []*uintptr{&e.slots[i].done, &e.slots[i].nearly} {
			if err := cuCheck(call(drv.eventCreate, ptr(ev), evFlags), "cuEventCreate"); err != nil {
				return err
			}
		}
	}
	ln := 256
	if e.cfg.Hidden <= 256 {
		ln = (e.cfg.Hidden + 31) / 32 * 32
	}
	e.lnThreads = ln
	e.lnWarp = !e.conf.FP32 && e.cfg.Hidden%8 == 0 // LN_WARP in kernels.cu
	e.split.context = time.Since(t)
	t = time.Now()
	fp16 := 1
	if e.conf.FP32 {
		fp16 = 0
	}
	opts := []string{
		fmt.Sprintf("-DHIDDEN=%d", e.cfg.Hidden), fmt.Sprintf("-DHEAD_DIM=%d", e.cfg.HeadDim),
		fmt.Sprintf("-DMAXPOS=%d", e.cfg.MaxPos), fmt.Sprintf("-DLN_THREADS=%d", ln), fmt.Sprintf("-DUSE_FP16=%d", fp16),
	}
	if os.Getenv("M3ECTL_NVRTC_VERBOSE") == "1" {
		opts = append(opts, "--ptxas-options=-v")
	}
	// M3ECTL_NVRTC_DEFINES adds -D options, separated by spaces or commas, for
	// kernel experiments (docs/gpu-notes.md: ATTN_MINB and friends); they are
	// part of the cache key.
	opts = append(opts, strings.FieldsFunc(os.Getenv("M3ECTL_NVRTC_DEFINES"), func(r rune) bool { return r == ' ' || r == ',' })...)
	// Two tokens per warp in add_ln: 0.335 against 0.355 ms over the 24
	// LayerNorms of 64 x 128 tokens (H200; more loads in flight per warp).
	e.lnTPW = min(envInt("M3ECTL_LN_TPW", 2), 4) // more would only spill registers
	opts = append(opts, fmt.Sprintf("-DLN_TPW=%d", e.lnTPW), fmt.Sprintf("-DATTN_KC=%d", attnChunkKeys(e.cfg.HeadDim)))
	// Programmatic dependent launch between a GEMM and the kernel reading
	// its output: that kernel's blocks start while the GEMM drains. On the
	// H200, graph replay of 16-128 short rows 3-5% shorter (docs/gpu.md,
	// third round); M3ECTL_CUDA_PDL=0 launches as before.
	e.l.pdl = os.Getenv("M3ECTL_CUDA_PDL") != "0" && e.dev.Major >= 9 && drv.launchEx != 0
	if e.l.pdl {
		opts = append(opts, "-DUSE_PDL=1")
	}
	cubin, err := compileKernels(kernelSource, opts, e.dev.Major, e.dev.Minor)
	if err != nil {
		return err
	}
	names := kernelNames
	e.attnMMA = !e.conf.FP32 && e.cfg.HeadDim%16 == 0 && e.cfg.HeadDim <= 128 && e.dev.Major >= 8
	if e.attnMMA {
		names = append(append([]string{}, names...), "attn_mma")
	}
	if e.mod, err = loadModule(cubin, names); err != nil {
		return err
	}
	f := e.mod.funcs
	e.fnEmb, e.fnAddLN, e.fnGELU, e.fnPool, e.fnAttn = f["embed_ln"], f["add_ln"], f["gelu"], f["pool"], f["attn_simple"]
	e.fnLN = f["ln_res"]
	if e.attnMMA {
		e.fnAttn = f["attn_mma"]
		// Over 48 KB of dynamic shared memory needs the kernel's opt-in; a
		// GPU with less shared memory per block (a 99 KB consumer card and
		// 128-wide heads) keeps the plain attention kernel instead.
		e.attnSmem = attnSmemBytes(e.cfg.HeadDim, e.cfg.MaxPos, attnChunkKeys(e.cfg.HeadDim))
		if err := cuCheck(call(drv.funcSetAttribute, e.fnAttn, funcAttrMaxDynamicSmem, uintptr(e.attnSmem)), "cuFuncSetAttribute(attn_mma)"); err != nil {
			slog.Info("cuda: tensor-core attention does not fit this GPU's shared memory; using the plain kernel", "bytes", e.attnSmem, "err", err)
			e.attnMMA, e.attnSmem, e.fnAttn = false, 0, f["attn_simple"]
		}
	}
	e.loadText()
	dt := cudaR16F
	if e.conf.FP32 {
		dt = cudaR32F
	}
	if e.gemm, err = newGemmer(dt, e.dev); err != nil {
		return err
	}
	e.split.kernels = time.Since(t)
	// Buffers for the largest batch promised, and that shape's GEMM choice
	// while the weights are still converting (prewarmGemms).
	rows, toks := o.MaxBatchRows, o.MaxBatchTokens
	if toks == 0 && rows > 0 {
		toks = rows * 32
	}
	if toks > 0 {
		if rows == 0 {
			rows = toks
		}
		bk := bucketFor(toks, rows)
		e.rowsHint = rows
		if err := e.stage(0, &engine.Batch{Offsets: []int32{0}}, bk); err != nil {
			return err
		}
		if os.Getenv("M3ECTL_CUDA_PREWARM") != "0" {
			if prewarmBeside() {
				done := e.prewarmBeside(bk)
				defer func() {
					if perr := <-done; err == nil {
						err = perr
					}
				}()
			} else if err := e.prewarmGemms(bk); err != nil {
				return err
			}
		}
	}
	e.split.prewarm = time.Since(t) - e.split.kernels
	t = time.Now()
	pw := <-weightsCh
	e.split.weightsTaken = true
	e.split.wait, e.split.convert = time.Since(t), pw.took
	if pw.err != nil {
		pw.release()
		return pw.err
	}
	// Uploading on a goroutine of its own, beside the kernel compile and
	// the GEMM prewarm, saved ~40 ms of the 24 x 1024 model's start but
	// failed now and then with CUDA_ERROR_INVALID_VALUE in the staged
	// copy (third round, not understood), so the upload stays here; the
	// prewarm moves instead (prewarmBeside).
	t = time.Now()
	if e.w, e.split.uploaded, err = e.deviceWeights(pw, m.Weights, o.Device); err != nil {
		return err
	}
	e.split.upload = time.Since(t)
	return nil
}

func (e *Engine) setCurrent() error {
	return cuCheck(call(drv.ctxSetCurrent, e.ctx), "cuCtxSetCurrent")
}

// Info reports the model's shape.
func (e *Engine) Info() engine.Info {
	return engine.Info{Backend: "cuda", Dim: e.cfg.Hidden, MaxSeqLen: e.cfg.MaxPos, VocabSize: e.cfg.Vocab, Pooling: e.pool}
}

// Device names the GPU, its compute capability and the driver version.
func (e *Engine) Device() string {
	return fmt.Sprintf("%s (sm_%d%d, %d SMs, driver CUDA %d.%d)", e.dev.Name, e.dev.Major, e.dev.Minor, e.dev.SMs, e.dev.Driver/1000, e.dev.Driver%1000/10)
}

// WeightBytes is the device memory held by the weights.
func (e *Engine) WeightBytes() int64 { return e.w.bytes }

// Embed runs the encoder on b and returns pooled (and, per the model,
// normalised) embeddings, b.Rows()*Dim float32s.
func (e *Engine) Embed(ctx context.Context, b *engine.Batch) ([]float32, error) {
	return e.embed(ctx, b, nil)
}

// EmbedInto is Embed writing into dst (at least b.Rows()*Dim long), so a
// caller that reuses one buffer allocates nothing per batch
// (engine.IntoEmbedder).
func (e *Engine) EmbedInto(ctx context.Context, b *engine.Batch, dst []float32) ([]float32, error) {
	if len(dst) < b.Rows()*e.cfg.Hidden {
		return nil, fmt.Errorf("EmbedInto: destination holds %d floats, %d rows need %d", len(dst), b.Rows(), b.Rows()*e.cfg.Hidden)
	}
	return e.embed(ctx, b, dst)
}

func (e *Engine) embed(ctx context.Context, b *engine.Batch, dst []float32) ([]float32, error) {
	t, err := e.Submit(ctx, b)
	if err != nil {
		return nil, err
	}
	return e.Await(t, dst)
}

// Close frees the GPU memory, graphs, stream and context reference.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	e.release()
	return nil
}

func (e *Engine) release() {
	if e.ctx != 0 {
		_ = e.setCurrent()
		if e.l.stream != 0 {
			call(drv.streamSynchronize, e.l.stream)
		}
	}
	e.dropGraphs()
	for i := range e.slots {
		e.slots[i].free()
	}
	e.buf.free()
	e.releaseWeights()
	if e.gemm != nil {
		e.gemm.close()
	}
	e.mod.unload()
	e.textMod.unload()
	if e.l.stream != 0 {
		call(drv.streamDestroy, e.l.stream)
		e.l.stream = 0
	}
	// Text buffers still being written out by the server stay mapped: the
	// context (whose memory they are) is kept then. A slot's buffer that no
	// answer took (a batch never awaited) goes back first.
	for i := range e.slots {
		e.dropText(&e.slots[i])
	}
	if !e.texts.drain(10 * time.Second) {
		slog.Warn("cuda: text buffers still in use at close; keeping the GPU context")
		e.ctx = 0
	}
	if e.ctx != 0 {
		call(drv.primaryCtxRelease, uintptr(e.devNo))
		e.ctx = 0
	}
}

// DeviceMemory reports free and total memory of GPU ordinal dev, for the
// benchmark's "GPU memory used" figure.
func DeviceMemory(dev int) (free, total uint64, err error) {
	if err = load(); err != nil {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d, _, err := getDevice(dev)
	if err != nil {
		return
	}
	var ctx uintptr
	if err = cuCheck(call(drv.primaryCtxRetain, ptr(&ctx), uintptr(d)), "cuDevicePrimaryCtxRetain"); err != nil {
		return
	}
	defer call(drv.primaryCtxRelease, uintptr(d))
	if err = cuCheck(call(drv.ctxSetCurrent, ctx), "cuCtxSetCurrent"); err != nil {
		return
	}
	free, total = memInfo()
	return
}
