package cuda

import (
	"fmt"
	"sort"
	"unsafe"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// GPUTime runs batch b reps times the way Embed does (graph replay, the
// input and result copies included) and returns the median device time of
// one run in milliseconds, from CUDA events recorded around each run. That
// is how the PyTorch baseline is timed (torch.cuda.Event around one forward
// whose inputs already sit on the GPU), so the two compare like for like;
// Embed's wall time adds the host's share (filling the pinned buffer, the
// launch call, waking on completion).
func (e *Engine) GPUTime(b *engine.Batch, reps int) (float64, error) {
	if err := b.Validate(e.cfg.MaxPos, e.cfg.Vocab); err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.waitIdle()
	if e.closed {
		return 0, fmt.Errorf("cuda engine is closed")
	}
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		return 0, err
	}
	bk := bucketFor(b.Tokens(), b.Rows())
	if err := e.stage(0, b, bk); err != nil {
		return 0, err
	}
	var ev [2]uintptr
	for i := range ev {
		if err := cuCheck(call(drv.eventCreate, ptr(&ev[i]), 0), "cuEventCreate"); err != nil {
			return 0, err
		}
		defer call(drv.eventDestroy, ev[i])
	}
	ts := make([]float64, 0, reps)
	for r := -3; r < reps; r++ { // three warm-up runs (capture, tuning) first
		call(drv.eventRecord, ev[0], e.l.stream)
		if err := e.run(bk, &e.slots[0]); err != nil {
			return 0, err
		}
		call(drv.eventRecord, ev[1], e.l.stream)
		if err := cuCheck(call(drv.eventSynchronize, ev[1]), "cuEventSynchronize"); err != nil {
			return 0, fmt.Errorf("gpu time: %w", err)
		}
		var ms float32
		if err := cuCheck(call(drv.eventElapsed, uintptr(unsafe.Pointer(&ms)), ev[0], ev[1]), "cuEventElapsedTime"); err != nil {
			return 0, err
		}
		if r >= 0 {
			ts = append(ts, float64(ms))
		}
	}
	sort.Float64s(ts)
	return ts[len(ts)/2], nil
}

// GPUTimeBackToBack replays batch b's graph reps times with no host wait in
// between and returns the device milliseconds per replay: the GPU's own
// rate for a stream of such batches, the ceiling of overlapping batches.
func (e *Engine) GPUTimeBackToBack(b *engine.Batch, reps int) (float64, error) {
	if _, err := e.GPUTime(b, 1); err != nil { // fill, tune, capture
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.waitIdle()
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		return 0, err
	}
	bk := bucketFor(b.Tokens(), b.Rows())
	var ev [2]uintptr
	for i := range ev {
		if err := cuCheck(call(drv.eventCreate, ptr(&ev[i]), 0), "cuEventCreate"); err != nil {
			return 0, err
		}
		defer call(drv.eventDestroy, ev[i])
	}
	call(drv.eventRecord, ev[0], e.l.stream)
	for r := 0; r < reps; r++ {
		if err := e.run(bk, &e.slots[0]); err != nil {
			return 0, err
		}
	}
	call(drv.eventRecord, ev[1], e.l.stream)
	if err := cuCheck(call(drv.eventSynchronize, ev[1]), "cuEventSynchronize"); err != nil {
		return 0, fmt.Errorf("gpu time: %w", err)
	}
	var ms float32
	if err := cuCheck(call(drv.eventElapsed, uintptr(unsafe.Pointer(&ms)), ev[0], ev[1]), "cuEventElapsedTime"); err != nil {
		return 0, err
	}
	return float64(ms) / float64(reps), nil
}
