package cuda

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/floatfmt"
)

// The embeddings' JSON text, written on the GPU (engine.TextEmbedder).
//
// At 64k requests/s on the H200 a quarter to a third of the server's CPU
// went into formatting 768 floats per answer (29 ns a number with
// pkg/floatfmt). The GPU does a whole batch's numbers in one kernel of a few
// microseconds and writes the text straight into the slot's pinned buffer
// (mapped: with unified addressing a cuMemAllocHost pointer is valid on the
// device), so the host copies bytes. The text is the PCIe transfer that
// grows: ~8.5 KB a row against 3 KB of floats.

//go:embed textfmt.cu
var textSource string

const (
	textThreads = 256 // TEXT_THREADS
	maxNumLen   = 17  // MAX_NUM: "-0.0000ddddddddd" and a comma
	// maxTextDim is the widest row the kernel takes: a row is put together
	// in its block's shared memory (48 KB without an opt-in).
	maxTextDim = 2048
)

// textStride is the room of one row's text in a slot's text buffer, a
// multiple of 16 for the kernel's 16-byte stores.
func textStride(dim int) int { return (dim*maxNumLen + 15) / 16 * 16 }

// textHeader is the room of the rows' lengths before the texts.
func textHeader(rows int) int { return (4*rows + 15) / 16 * 16 }

// textKernelSource is textfmt.cu behind pkg/floatfmt's Schubfach table.
func textKernelSource() string {
	kMin, g := floatfmt.SchubfachTable()
	var b strings.Builder
	fmt.Fprintf(&b, "#define SF_KMIN (%d)\n__device__ const unsigned long long SF_G[%d] = {", kMin, len(g))
	for i, x := range g {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "0x%xULL", x)
	}
	b.WriteString("};\n")
	b.WriteString(textSource)
	return b.String()
}

// loadText compiles and loads the text kernel; without it (switched off,
// too wide a row, a failed compile) EmbedText writes no text and the
// server formats the floats as before. The context is current.
func (e *Engine) loadText() {
	if e.conf.NoText || e.cfg.Hidden > maxTextDim {
		return
	}
	cubin, err := compileKernels(textKernelSource(), []string{fmt.Sprintf("-DTEXT_DIM=%d", e.cfg.Hidden)}, e.dev.Major, e.dev.Minor)
	if err == nil {
		e.textMod, err = loadModule(cubin, []string{"text_rows"})
	}
	if err != nil {
		slog.Info("cuda: the JSON text kernel is unavailable; the server formats embeddings itself", "err", err)
		return
	}
	e.fnText = e.textMod.funcs["text_rows"]
}

// maxTextBufs bounds an engine's text buffers: one per batch whose text
// the server has not written out yet. A caller that never released would
// make the engine stop writing text (the server then formats), not grow
// without end.
const maxTextBufs = 16

// textPool holds an engine's pinned text buffers. A batch takes one at
// submission; its rows are handed to the requests in place and the buffer
// comes back when the last answer is written (engine.Text.Release), on
// whatever goroutine that is, so only pool bookkeeping happens there; CUDA
// calls stay on the engine's own calls (get, drain).
type textPool struct {
	mu   sync.Mutex
	free []pinned
	out  int // handed out, not back yet
	back *sync.Cond
}

// get returns a buffer of at least n bytes; ok is false when all are out.
// The context is current.
func (p *textPool) get(n int) (buf pinned, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.free) > 0 {
		buf = p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if buf.size >= n {
			p.out++
			return buf, true, nil
		}
		buf.free() // from before the buffers grew
	}
	if p.out+len(p.free) >= maxTextBufs {
		return pinned{}, false, nil
	}
	if buf, err = allocPinned(n); err != nil {
		return pinned{}, false, err
	}
	p.out++
	return buf, true, nil
}

func (p *textPool) put(buf pinned) {
	p.mu.Lock()
	p.free = append(p.free, buf)
	p.out--
	if p.back != nil {
		p.back.Broadcast()
	}
	p.mu.Unlock()
}

// drain frees the pool once every buffer is back, waiting up to wait; it
// says false when some are still out (their memory must then stay mapped:
// the engine keeps its context). The context is current.
func (p *textPool) drain(wait time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.back == nil {
		p.back = sync.NewCond(&p.mu)
	}
	deadline := time.Now().Add(wait)
	for p.out > 0 && time.Now().Before(deadline) {
		t := time.AfterFunc(10*time.Millisecond, p.back.Broadcast)
		p.back.Wait()
		t.Stop()
	}
	for i := range p.free {
		p.free[i].free()
	}
	p.free = nil
	return p.out == 0
}

// stageText takes slot s a text buffer for the device buffers' rows;
// without one the batch goes without text.
func (e *Engine) stageText(s *slot) error {
	n := textHeader(e.buf.capRows) + e.buf.capRows*textStride(e.cfg.Hidden)
	buf, ok, err := e.texts.get(n)
	if err != nil || !ok {
		s.wantText = false
		return err
	}
	s.text, s.textHdr = buf, textHeader(e.buf.capRows)
	return nil
}

// dropText gives slot s's text buffer back unread (a failed run).
func (e *Engine) dropText(s *slot) {
	if s.wantText {
		e.texts.put(s.text)
		s.text, s.wantText = pinned{}, false
	}
}

// launchText queues the text kernel over slot s's rows, after pooling.
func (e *Engine) launchText(s *slot) error {
	return e.l.launch(e.fnText, [3]int{s.rows, 1, 1}, [3]int{textThreads, 1, 1}, 0,
		e.buf.out, s.rows, uintptr(s.text.p), s.textHdr, textStride(e.cfg.Hidden))
}

// readText hands txt slot s's rows in place, with the buffer's release;
// emb is the rows' floats, for a row the kernel left to the host (a
// subnormal).
func (e *Engine) readText(s *slot, emb []float32, txt *engine.Text) {
	buf := s.text
	s.text, s.wantText = pinned{}, false
	dim, hdr, stride := e.cfg.Hidden, s.textHdr, textStride(e.cfg.Hidden)
	raw := unsafe.Slice((*byte)(buf.p), buf.size)
	lens := unsafe.Slice((*int32)(buf.p), s.rows)
	for i, n := range lens {
		if n < 0 || int(n) > stride {
			row := emb[i*dim : (i+1)*dim]
			if s.textOnly {
				row = e.rowsFromDevice(s, i, i+1)
			}
			txt.Rows = append(txt.Rows, floatfmt.AppendFloat32s(nil, row, ',', "null"))
			continue
		}
		start := hdr + i*stride
		txt.Rows = append(txt.Rows, raw[start:start+int(n):start+int(n)])
	}
	txt.Release = func() { e.texts.put(buf) }
}

// rowsFromDevice copies rows [lo, hi) of slot s's batch from the device
// output (left there by textOnly) into the slot's pinned result block and
// returns them; NaNs when the copy fails, which an answer writes as
// nulls rather than numbers.
func (e *Engine) rowsFromDevice(s *slot, lo, hi int) []float32 {
	dim := e.cfg.Hidden
	rows := s.out.float32s()[lo*dim : hi*dim]
	lockThread()
	defer unlockThread()
	off := uintptr(lo * dim * 4)
	if e.setCurrent() != nil ||
		cuCheck(call(drv.memcpyDtoHAsync, uintptr(s.out.p)+off, uintptr(e.buf.out)+off, uintptr(len(rows)*4), e.l.stream), "cuMemcpyDtoHAsync") != nil ||
		cuCheck(call(drv.streamSynchronize, e.l.stream), "cuStreamSynchronize") != nil {
		for i := range rows {
			rows[i] = float32(math.NaN())
		}
	}
	return rows
}

// EmbedText is EmbedInto that also writes the rows' JSON text into txt
// (engine.TextEmbedder); txt stays empty when the text kernel is off.
func (e *Engine) EmbedText(ctx context.Context, b *engine.Batch, dst []float32, txt *engine.Text) ([]float32, error) {
	if len(dst) < b.Rows()*e.cfg.Hidden {
		return nil, fmt.Errorf("EmbedText: destination holds %d floats, %d rows need %d", len(dst), b.Rows(), b.Rows()*e.cfg.Hidden)
	}
	t, err := e.submit(ctx, b, true, b.TextOnly)
	if err != nil {
		return nil, err
	}
	return e.await(t, dst, txt)
}

// AwaitText is Await for a batch submitted with Batch.Text, filling txt
// (engine.TextEmbedder).
func (e *Engine) AwaitText(t engine.Ticket, dst []float32, txt *engine.Text) ([]float32, error) {
	return e.await(t, dst, txt)
}
