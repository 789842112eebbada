package cuda

import (
	"os"
	"runtime"
	"time"
)

// prewarmGemms chooses bucket bk's GEMM algorithms before the weights are
// on the GPU, with activation buffers standing in for the weight matrices
// (a choice depends on the shapes alone; the products are thrown away). The
// first cuBLASLt calls of a process pay for its heuristics and for loading
// their kernels (the first shape's choice took 158 ms of the 24 x 1024
// model's bulk job on the H200, later shapes ~20 ms); init runs this while
// the weights are still being converted, so that cost moves off the job's
// critical path. Skipped when a buffer is too small to stand in.
func (e *Engine) prewarmGemms(bk bucket) error {
	H, I, T, b := e.cfg.Hidden, e.cfg.Intermediate, bk.T, &e.buf
	if e.conf.NoTune || T*I < 3*H*H || T*3*H < I*H || T < I {
		return nil
	}
	st := e.l.stream
	// Scratch buffers large enough (the check above) stand in for weights
	// and biases: timing depends on shapes, not values.
	for _, s := range e.layerGemms(T, [4]devPtr{b.ffn, b.ffn, b.qkv, b.qkv}, [4]devPtr{b.tmp, b.qkv, b.tmp, b.hidden}) {
		if err := e.gemm.tune(st, s.d, s.x, s.w, s.bias, s.c, s.m, s.n, s.k, s.epi); err != nil {
			e.gemm.releaseHold()
			return err
		}
	}
	e.gemm.releaseHold()
	algos.save()
	return cuCheck(call(drv.streamSynchronize, st), "cuStreamSynchronize")
}

// prewarmBeside: init runs prewarmGemms on a thread of its own while it
// waits for the weights and uploads them, instead of before (the 24 x
// 1024 model's prewarm, ~150 ms of cuBLASLt's first calls, and its 65 ms
// upload were one after the other on the start's critical path).
// M3ECTL_CUDA_PREWARM_BESIDE=0 runs them in turn, as before.
func prewarmBeside() bool { return os.Getenv("M3ECTL_CUDA_PREWARM_BESIDE") != "0" }

// prewarmBeside starts prewarmGemms(bk) on a locked OS thread with the
// engine's context current; the channel yields its error. Nothing else
// uses the engine's stream, buffers or GEMM handle until it is received.
func (e *Engine) prewarmBeside(bk bucket) <-chan error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t := time.Now()
		err := e.setCurrent()
		if err == nil {
			err = e.prewarmGemms(bk)
		}
		e.split.prewarmBeside = time.Since(t)
		done <- err
	}()
	return done
}
