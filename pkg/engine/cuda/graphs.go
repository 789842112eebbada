package cuda

import (
	"log/slog"
	"time"
)

// graphKey names one captured graph: a bucket's head or tail part, or the
// whole pass.
type graphKey struct {
	bk   bucket
	part int
}

// run queues bucket bk's forward pass with the input and result copies of
// slot sl, records sl.nearly before the tail layers and sl.done after the
// result copy. It replays the bucket's two graphs (capturing them first if
// needed), or launches the kernels directly when graphs are off or too many
// exist. e.mu is held, the thread locked and the context current.
func (e *Engine) run(bk bucket, sl *slot) error {
	if err := e.copyIn(bk, sl.in); err != nil {
		return err
	}
	head, tail, err := e.graphsFor(bk)
	if err != nil {
		return err
	}
	if head != 0 {
		err = cuCheck(call(drv.graphLaunch, head, e.l.stream), "cuGraphLaunch")
	} else {
		err = e.enqueueKernels(bk, nil, partHead)
	}
	if err != nil {
		return err
	}
	if err := cuCheck(call(drv.eventRecord, sl.nearly, e.l.stream), "cuEventRecord"); err != nil {
		return err
	}
	if tail != 0 {
		err = cuCheck(call(drv.graphLaunch, tail, e.l.stream), "cuGraphLaunch")
	} else {
		err = e.enqueueKernels(bk, nil, partTail)
	}
	if err != nil {
		return err
	}
	if sl.wantText {
		if err := e.launchText(sl); err != nil {
			return err
		}
	}
	if !sl.textOnly {
		if err := e.copyOut(sl.out, sl.rows); err != nil {
			return err
		}
	}
	return cuCheck(call(drv.eventRecord, sl.done, e.l.stream), "cuEventRecord")
}

// graphsFor returns bucket bk's head and tail graphs, capturing them on
// the shape's second batch; 0, 0 when this batch launches its kernels one
// by one (graphs off, the shape's first batch, or too many graphs).
func (e *Engine) graphsFor(bk bucket) (head, tail uintptr, err error) {
	if e.conf.NoGraphs {
		return 0, 0, e.planGemms(bk)
	}
	head, ok := e.graphs[graphKey{bk, partHead}]
	if ok {
		return head, e.graphs[graphKey{bk, partTail}], nil
	}
	e.cold.Add(1)
	// A shape's first batch runs its kernels one by one and is captured
	// as a graph only when the shape comes again: capturing costs more
	// than one eager run, and the first embedding of a cold start, a
	// warm-up sample or a shape seen once need not pay it.
	e.seen[bk]++
	// Timing GEMMs and capturing are rare; a batch still in flight on the
	// stream finishes first, so that neither waits behind it nor times it.
	call(drv.streamSynchronize, e.l.stream)
	if len(e.graphs) >= 2*e.conf.MaxGraphs || (e.seen[bk] == 1 && !e.conf.CaptureFirst) {
		t := time.Now()
		if err := e.planGemms(bk); err != nil {
			return 0, 0, err
		}
		if e.seen[bk] == 1 {
			slog.Debug("cuda shape first seen", "tokens", bk.T, "gemm_choice", ms(time.Since(t)))
		}
		return 0, 0, nil
	}
	t := time.Now()
	if err := e.planGemms(bk); err != nil {
		return 0, 0, err
	}
	if head, err = e.capture(bk, partHead); err != nil {
		return 0, 0, err
	}
	if tail, err = e.capture(bk, partTail); err != nil {
		call(drv.graphExecDestroy, head)
		return 0, 0, err
	}
	e.graphs[graphKey{bk, partHead}], e.graphs[graphKey{bk, partTail}] = head, tail
	slog.Debug("cuda graph captured", "tokens", bk.T, "graph_capture", ms(time.Since(t)))
	return head, tail, nil
}

// ColdRuns counts the batches that ran without a captured graph (a shape's
// first batches, with their GEMM timing and capture): engine.ColdCounter.
func (e *Engine) ColdRuns() uint64 { return e.cold.Load() }

// capture records part of bucket bk's kernels (planned already) as a graph.
func (e *Engine) capture(bk bucket, part int) (uintptr, error) {
	if err := cuCheck(call(drv.streamBeginCapture, e.l.stream, captureRelax), "cuStreamBeginCapture"); err != nil {
		return 0, err
	}
	encErr := e.enqueueKernels(bk, nil, part)
	var graph uintptr
	endErr := cuCheck(call(drv.streamEndCapture, e.l.stream, ptr(&graph)), "cuStreamEndCapture")
	if encErr != nil || endErr != nil {
		if graph != 0 {
			call(drv.graphDestroy, graph)
		}
		if encErr != nil {
			return 0, encErr
		}
		return 0, endErr
	}
	defer call(drv.graphDestroy, graph)
	var exec uintptr
	if err := cuCheck(call(drv.graphInstantiate, ptr(&exec), graph, 0), "cuGraphInstantiate"); err != nil {
		return 0, err
	}
	return exec, nil
}

func (e *Engine) dropGraphs() {
	for k, g := range e.graphs {
		call(drv.graphExecDestroy, g)
		delete(e.graphs, k)
	}
}
