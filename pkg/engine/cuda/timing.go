package cuda

import (
	"fmt"
	"sort"

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
	var ts []float64
	err := e.exclusive(func() error {
		bk := bucketFor(b.Tokens(), b.Rows())
		if err := e.stage(0, b, bk); err != nil {
			return err
		}
		sw, err := newStopwatch()
		if err != nil {
			return err
		}
		defer sw.destroy()
		for r := -3; r < reps; r++ { // three warm-up runs (capture, tuning) first
			ms, err := sw.time(e.l.stream, func() error { return e.run(bk, &e.slots[0]) })
			if err != nil {
				return fmt.Errorf("gpu time: %w", err)
			}
			if r >= 0 {
				ts = append(ts, float64(ms))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
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
	var ms float32
	err := e.exclusive(func() error {
		bk := bucketFor(b.Tokens(), b.Rows())
		sw, err := newStopwatch()
		if err != nil {
			return err
		}
		defer sw.destroy()
		ms, err = sw.time(e.l.stream, func() error {
			for r := 0; r < reps; r++ {
				if err := e.run(bk, &e.slots[0]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gpu time: %w", err)
		}
		return nil
	})
	return float64(ms) / float64(reps), err
}

// exclusive runs fn with the engine to itself, for the measuring calls:
// no batch in flight, the engine open, the context current on this thread.
func (e *Engine) exclusive(fn func() error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.waitIdle()
	if e.closed {
		return fmt.Errorf("cuda engine is closed")
	}
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		return err
	}
	return fn()
}

// stopwatch is a pair of CUDA events that times the work queued between
// them on one stream.
type stopwatch struct{ start, end uintptr }

func newStopwatch() (stopwatch, error) {
	var sw stopwatch
	if err := cuCheck(call(drv.eventCreate, ptr(&sw.start), 0), "cuEventCreate"); err != nil {
		return sw, err
	}
	if err := cuCheck(call(drv.eventCreate, ptr(&sw.end), 0), "cuEventCreate"); err != nil {
		call(drv.eventDestroy, sw.start)
		return sw, err
	}
	return sw, nil
}

func (sw stopwatch) destroy() {
	call(drv.eventDestroy, sw.start)
	call(drv.eventDestroy, sw.end)
}

// time records the start event on stream, lets queue put work behind it,
// records the end, waits for it and returns the device milliseconds
// between the two.
func (sw stopwatch) time(stream uintptr, queue func() error) (float32, error) {
	call(drv.eventRecord, sw.start, stream)
	if err := queue(); err != nil {
		return 0, err
	}
	call(drv.eventRecord, sw.end, stream)
	if err := cuCheck(call(drv.eventSynchronize, sw.end), "cuEventSynchronize"); err != nil {
		return 0, err
	}
	var ms float32
	err := cuCheck(call(drv.eventElapsed, ptr(&ms), sw.start, sw.end), "cuEventElapsedTime")
	return ms, err
}
