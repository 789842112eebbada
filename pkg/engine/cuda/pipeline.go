package cuda

import (
	"context"
	"fmt"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// slot is one batch in flight: its pinned input and result buffers and the
// two blocking-sync events its run records, "nearly done" (before the tail
// layers) and "done" (after the result copy). Two slots let the next batch
// be staged and queued while the GPU computes the current one; the device
// buffers are shared, since the one stream runs the batches in order.
type slot struct {
	in, out      pinned
	nearly, done uintptr
	busy         bool // submitted and not yet awaited
	rows         int
	// text: the rows' JSON text and lengths, written by the text kernel
	// when wantText, a buffer of the engine's textPool (textfmt.go);
	// textHdr is where the texts begin.
	text     pinned
	wantText bool
	textHdr  int
	// textOnly: the floats stay on the device (Batch.TextOnly, EmbedText
	// only); readText fetches a row's that the host must format.
	textOnly bool
}

func (s *slot) free() {
	s.in.free()
	s.out.free()
	for _, ev := range []*uintptr{&s.nearly, &s.done} {
		if *ev != 0 {
			call(drv.eventDestroy, *ev)
			*ev = 0
		}
	}
}

// stage grows slot i's pinned buffers (and the device buffers) to bucket
// bk and writes batch b into its input block. e.mu is held and slot i is
// not in flight.
func (e *Engine) stage(i int, b *engine.Batch, bk bucket) error {
	rows := max(b.Rows(), e.rowsHint)
	if !e.buf.fits(bk, rows) {
		// Growing frees the device buffers: every batch in flight must
		// have finished and been read (its results sit in pinned memory,
		// which stays).
		for e.slots[1-i].busy {
			e.slotFree.Wait()
		}
	}
	if err := e.buf.ensure(e, bk, rows); err != nil {
		return err
	}
	s := &e.slots[i]
	grow := func(p *pinned, n int) error {
		if p.size >= n {
			return nil
		}
		p.free()
		var err error
		*p, err = allocPinned(n)
		return err
	}
	if err := grow(&s.in, 4*e.buf.capIn); err != nil {
		return err
	}
	if err := grow(&s.out, 4*e.buf.capRows*e.cfg.Hidden); err != nil {
		return err
	}
	fillInput(s.in.int32s(), b, bk)
	s.rows = b.Rows()
	return nil
}

// waitIdle waits until no pipelined batch is in flight (the timing helpers
// use slot 0 directly). e.mu is held.
func (e *Engine) waitIdle() {
	for e.slots[0].busy || e.slots[1].busy {
		e.slotFree.Wait()
	}
}

// Submit stages batch b in a free slot and queues its run behind the batch
// in flight, if any, returning at once (engine.Pipeliner). b may be reused
// when Submit returns. With two batches in flight it waits for the older
// one to be awaited.
func (e *Engine) Submit(ctx context.Context, b *engine.Batch) (engine.Ticket, error) {
	return e.submit(ctx, b, b.Text, false)
}

// submit is Submit, with the rows' JSON text written as well when text is
// set and the text kernel is loaded, and without the floats' copy to the
// host when textOnly is too. textOnly needs the batch's device output to
// stay until it is awaited: no batch may be submitted behind it (EmbedText).
func (e *Engine) submit(ctx context.Context, b *engine.Batch, text, textOnly bool) (engine.Ticket, error) {
	if err := ctx.Err(); err != nil {
		return engine.Ticket{}, err
	}
	if b.Rows() == 0 {
		return engine.Ticket{Slot: -1}, nil
	}
	if err := b.Validate(e.cfg.MaxPos, e.cfg.Vocab); err != nil {
		return engine.Ticket{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return engine.Ticket{}, fmt.Errorf("cuda engine is closed")
	}
	// Slot 0 when nothing is in flight (so that Embed alone never
	// allocates the second slot's pinned memory), else the free one.
	for e.slots[0].busy && e.slots[1].busy {
		e.slotFree.Wait()
	}
	i := 0
	if e.slots[0].busy {
		i = 1
	}
	if e.closed {
		return engine.Ticket{}, fmt.Errorf("cuda engine is closed")
	}
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		return engine.Ticket{}, err
	}
	bk := bucketFor(b.Tokens(), b.Rows())
	if err := e.stage(i, b, bk); err != nil {
		return engine.Ticket{}, err
	}
	s := &e.slots[i]
	// A new shape's GEMMs are chosen before the read lock (timing them
	// takes the write lock); what run plans again is then cached.
	if !e.planned[bk] && !e.conf.NoTune {
		if err := e.planGemms(bk); err != nil {
			return engine.Ticket{}, err
		}
		e.planned[bk] = true
	}
	s.wantText = text && e.fnText != 0
	if s.wantText {
		if err := e.stageText(s); err != nil {
			return engine.Ticket{}, err
		}
	}
	s.textOnly = s.wantText && textOnly
	tuneGate.RLock()
	err := e.run(bk, s)
	tuneGate.RUnlock()
	if err != nil {
		// What was queued may still run; wait for it so that the slot's
		// buffers are free again.
		call(drv.streamSynchronize, e.l.stream)
		e.dropText(s)
		return engine.Ticket{}, err
	}
	s.busy = true
	return engine.Ticket{Slot: i, Rows: b.Rows()}, nil
}

// Nearly blocks until t's batch has reached its tail layers on the GPU:
// the moment to cut and submit the next batch so that it is queued before
// the GPU runs dry, while the queue still collected rows for as long as it
// could (engine.Pipeliner). The thread sleeps meanwhile (blocking-sync
// event).
func (e *Engine) Nearly(t engine.Ticket) error {
	if t.Slot < 0 {
		return nil
	}
	return e.wait(e.slots[t.Slot].nearly, "nearly done")
}

// Await blocks until t's batch is done, writes its embeddings into dst
// (allocated when nil or short) and frees its slot (engine.Pipeliner).
// Tickets are awaited in the order they were submitted.
func (e *Engine) Await(t engine.Ticket, dst []float32) ([]float32, error) {
	return e.await(t, dst, nil)
}

// await is Await that also fills txt (when not nil) with the batch's text,
// if it was written.
func (e *Engine) await(t engine.Ticket, dst []float32, txt *engine.Text) ([]float32, error) {
	if txt != nil {
		txt.Reset()
	}
	if t.Slot < 0 {
		return []float32{}, nil
	}
	s := &e.slots[t.Slot]
	var err error
	switch e.conf.Sync {
	case "block", "spin":
		err = e.wait(s.done, "batch")
	default:
		if err = e.wait(s.nearly, "nearly done"); err == nil {
			err = e.waitTail(s.done)
		}
	}
	n := t.Rows * e.cfg.Hidden
	if err == nil {
		if len(dst) < n {
			dst = make([]float32, n)
		}
		switch {
		case !s.textOnly:
			copy(dst[:n], s.out.float32s())
		case txt == nil: // not reached: only EmbedText sets textOnly
			copy(dst[:n], e.rowsFromDevice(s, 0, t.Rows))
		}
	}
	if s.wantText {
		if err != nil || txt == nil { // failed, or awaited without text (Await)
			e.dropText(s)
		} else {
			e.readText(s, dst[:n], txt)
		}
	}
	e.mu.Lock()
	s.busy = false
	e.slotFree.Broadcast()
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// wait sleeps on a blocking-sync event without holding e.mu, so that the
// next batch can be submitted meanwhile.
func (e *Engine) wait(ev uintptr, what string) error {
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		return err
	}
	if err := cuCheck(call(drv.eventSynchronize, ev), "cuEventSynchronize"); err != nil {
		return fmt.Errorf("wait for %s: %w", what, err)
	}
	return nil
}

// tailSpin bounds the polling at the end of a batch: the tail of a small
// batch (its last quarter of layers, 0.1–0.15 ms on the H200) ends within
// it; a large batch's thread goes back to sleep.
const tailSpin = 250 * time.Microsecond

// cudaErrorNotReady is CUDA_ERROR_NOT_READY, cuEventQuery's "not yet".
const cudaErrorNotReady = 600

// waitTail polls ev for up to tailSpin, then sleeps on it. Waking from a
// blocking-sync event costs tens of microseconds, a serving cycle's worth
// when every batch pays it; the nearly-done event's wake-up is paid while
// the tail layers still run, and the end is seen at once by polling.
func (e *Engine) waitTail(ev uintptr) error {
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		return err
	}
	deadline := time.Now().Add(tailSpin)
	for {
		switch r := call(drv.eventQuery, ev); r {
		case 0:
			return nil
		case cudaErrorNotReady:
			if time.Now().After(deadline) {
				return cuCheck(call(drv.eventSynchronize, ev), "cuEventSynchronize")
			}
		default:
			return fmt.Errorf("wait for batch: %w", cuCheck(r, "cuEventQuery"))
		}
	}
}

// Pipelined reports whether the scheduler should overlap batches on this
// engine (engine.Pipeliner): when M3ECTL_CUDA_PIPELINE=1 (Config.Pipeline);
// off by default, since on the H200 it did not beat one batch at a time.
func (e *Engine) Pipelined() bool { return e.conf.Pipeline }
