package cuda

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/floatfmt"
)

func TestTextKernelSourceCarriesTheTable(t *testing.T) {
	src := textKernelSource()
	kMin, g := floatfmt.SchubfachTable()
	for _, want := range []string{fmt.Sprintf("#define SF_KMIN (%d)", kMin), fmt.Sprintf("SF_G[%d]", len(g)), fmt.Sprintf("0x%xULL", g[0]), "text_rows"} {
		if !bytes.Contains([]byte(src), []byte(want)) {
			t.Errorf("text kernel source lacks %q", want)
		}
	}
	if textStride(768)%16 != 0 || textStride(768) < 768*17 || textHeader(3) != 16 {
		t.Errorf("textStride(768) = %d, textHeader(3) = %d", textStride(768), textHeader(3))
	}
}

// TestEmbedTextMatchesFloats runs on the GPU machine: the fixture's rows
// through EmbedText, pipelined and not, come with text equal to
// floatfmt's of the floats returned beside it.
func TestEmbedTextMatchesFloats(t *testing.T) {
	needGPU(t)
	e, _, rows := openTiny(t, Config{})
	b := engine.NewBatch(rows)
	dim := e.Info().Dim
	var txt engine.Text
	for round := 0; round < 3; round++ { // eager, capture, graph replay
		dst := make([]float32, b.Rows()*dim)
		emb, err := e.EmbedText(context.Background(), b, dst, &txt)
		if err != nil {
			t.Fatal(err)
		}
		checkText(t, emb, &txt, b.Rows(), dim)
	}
	b.Text = true
	tk, err := e.Submit(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	emb, err := e.AwaitText(tk, nil, &txt)
	if err != nil {
		t.Fatal(err)
	}
	checkText(t, emb, &txt, b.Rows(), dim)
	// TextOnly: the same text, the floats left on the device; the slot's
	// pinned results are poisoned first, so that a text made from them
	// instead of the device's numbers fails.
	want := append([]float32(nil), emb...)
	for i := range 3 {
		b.TextOnly = i > 0
		for j := range e.slots {
			clear(e.slots[j].out.float32s())
		}
		if _, err := e.EmbedText(context.Background(), b, make([]float32, b.Rows()*dim), &txt); err != nil {
			t.Fatal(err)
		}
		checkText(t, want, &txt, b.Rows(), dim)
		if i > 0 && e.slots[0].textOnly != true {
			t.Fatal("TextOnly batch copied its floats")
		}
	}
	if got := e.rowsFromDevice(&e.slots[0], 1, 2); !slices.Equal(got, want[dim:2*dim]) {
		t.Fatalf("row 1 from the device %v…, want %v…", got[:4], want[dim:dim+4])
	}
	b.TextOnly = false
	off, _, _ := openTiny(t, Config{NoText: true})
	if _, err := off.EmbedText(context.Background(), b, make([]float32, b.Rows()*dim), &txt); err != nil || len(txt.Rows) != 0 {
		t.Fatalf("with the text kernel off: %d rows of text, err %v; want none", len(txt.Rows), err)
	}
}

func checkText(t *testing.T, emb []float32, txt *engine.Text, rows, dim int) {
	t.Helper()
	if len(txt.Rows) != rows || txt.Release == nil {
		t.Fatalf("%d rows of text (release %v), want %d", len(txt.Rows), txt.Release != nil, rows)
	}
	defer txt.Release()
	for i := range rows {
		want := floatfmt.AppendFloat32s(nil, emb[i*dim:(i+1)*dim], ',', "null")
		if got := txt.Rows[i]; !bytes.Equal(got, want) {
			t.Fatalf("row %d: text %.80q…, floatfmt %.80q…", i, got, want)
		}
	}
}

// TestTextKernelMatchesFloatfmt runs on the GPU machine: float32 bit
// patterns across the whole range (every 97th one; with
// M3ECTL_TEXT_EXHAUSTIVE=1 every float32 of an embedding's magnitudes,
// 2^-20 to 2, both signs) formatted by a 768-wide text kernel equal
// floatfmt's, byte for byte; rows with a subnormal are marked for the host.
func TestTextKernelMatchesFloatfmt(t *testing.T) {
	needGPU(t)
	e, _, _ := openTiny(t, Config{})
	const dim, rows = 768, 2048
	k := newTextRunner(t, e, dim, rows)
	special := []uint32{0, 1 << 31, 0x7f800000, 0xff800000, 0x7fc00000, 1, 0x807fffff, 0x00800000, 0x7f7fffff, 0xff7fffff}
	for exp := uint32(1); exp < 255; exp++ {
		special = append(special, exp<<23, exp<<23|1, exp<<23|0x7fffff, 1<<31|exp<<23)
	}
	k.check(t, func(yield func(uint32) bool) {
		for _, u := range special {
			if !yield(u) {
				return
			}
		}
	})
	k.check(t, func(yield func(uint32) bool) {
		for u := uint64(0); u < 1<<32; u += 97 {
			if !yield(uint32(u)) {
				return
			}
		}
	})
	if os.Getenv("M3ECTL_TEXT_EXHAUSTIVE") == "1" {
		lo, hi := math.Float32bits(0x1p-20), math.Float32bits(2)
		k.check(t, func(yield func(uint32) bool) {
			for u := lo; u < hi; u++ {
				if !yield(u) || !yield(u|1<<31) {
					return
				}
			}
		})
	}
	t.Logf("%d numbers compared", k.numbers)
}

// textRunner runs a text kernel of width dim over rows × dim float32s at a
// time, outside any engine batch.
type textRunner struct {
	e          *Engine
	fn         uintptr
	dim, rows  int
	in         devPtr
	host, text pinned
	numbers    int
}

func newTextRunner(t testing.TB, e *Engine, dim, rows int) *textRunner {
	t.Helper()
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		t.Fatal(err)
	}
	cubin, err := compileKernels(textKernelSource(), []string{fmt.Sprintf("-DTEXT_DIM=%d", dim)}, e.dev.Major, e.dev.Minor)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := loadModule(cubin, []string{"text_rows"})
	if err != nil {
		t.Fatal(err)
	}
	k := &textRunner{e: e, fn: mod.funcs["text_rows"], dim: dim, rows: rows}
	if k.in, err = memAlloc(4 * dim * rows); err != nil {
		t.Fatal(err)
	}
	if k.host, err = allocPinned(4 * dim * rows); err != nil {
		t.Fatal(err)
	}
	if k.text, err = allocPinned(textHeader(rows) + rows*textStride(dim)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lockThread()
		defer unlockThread()
		_ = e.setCurrent()
		memFree(k.in)
		k.host.free()
		k.text.free()
		mod.unload()
	})
	return k
}

// check formats every bit pattern seq yields, a batch of rows at a time.
func (k *textRunner) check(t *testing.T, seq func(yield func(uint32) bool)) {
	t.Helper()
	vals := unsafe.Slice((*uint32)(k.host.p), k.dim*k.rows)
	n := 0
	failed := false
	flush := func() {
		if n == 0 || failed {
			return
		}
		for i := n; i < len(vals) && i%k.dim != 0; i++ {
			vals[i] = 0 // the last row's rest
		}
		rows := (n + k.dim - 1) / k.dim
		if err := k.run(rows); err != nil {
			t.Fatal(err)
		}
		failed = k.compare(t, rows)
		k.numbers += n
		n = 0
	}
	seq(func(u uint32) bool {
		vals[n] = u
		n++
		if n == len(vals) {
			flush()
		}
		return !failed
	})
	flush()
}

func (k *textRunner) run(rows int) error {
	e := k.e
	lockThread()
	defer unlockThread()
	if err := e.setCurrent(); err != nil {
		return err
	}
	if err := cuCheck(call(drv.memcpyHtoDAsync, uintptr(k.in), uintptr(k.host.p), uintptr(4*k.dim*rows), e.l.stream), "cuMemcpyHtoDAsync"); err != nil {
		return err
	}
	if err := e.l.launch(k.fn, [3]int{rows, 1, 1}, [3]int{textThreads, 1, 1}, 0, k.in, rows, uintptr(k.text.p), textHeader(k.rows), textStride(k.dim)); err != nil {
		return err
	}
	return cuCheck(call(drv.streamSynchronize, e.l.stream), "cuStreamSynchronize")
}

// compare checks rows of the kernel's output against floatfmt on every
// core and reports whether any failed.
func (k *textRunner) compare(t *testing.T, rows int) bool {
	t.Helper()
	floats := unsafe.Slice((*float32)(k.host.p), k.dim*rows)
	raw := unsafe.Slice((*byte)(k.text.p), k.text.size)
	lens := unsafe.Slice((*int32)(k.text.p), rows)
	hdr, stride := textHeader(k.rows), textStride(k.dim)
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var want []byte
			for r := w; r < rows; r += workers {
				row := floats[r*k.dim : (r+1)*k.dim]
				if lens[r] < 0 {
					if !hasSubnormal(row) {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("row %d left to the host without a subnormal", r))
						mu.Unlock()
					}
					continue
				}
				want = floatfmt.AppendFloat32s(want[:0], row, ',', "null")
				got := raw[hdr+r*stride : hdr+r*stride+int(lens[r])]
				if !bytes.Equal(got, want) {
					mu.Lock()
					bad = append(bad, firstDifference(row, got, want))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i, b := range bad {
		if i == 5 {
			break
		}
		t.Error(b)
	}
	return len(bad) > 0
}

func hasSubnormal(row []float32) bool {
	for _, f := range row {
		if u := math.Float32bits(f); u&0x7f800000 == 0 && u&0x7fffff != 0 {
			return true
		}
	}
	return false
}

// firstDifference names the first number whose text differs.
func firstDifference(row []float32, got, want []byte) string {
	g, w := bytes.Split(got, []byte{','}), bytes.Split(want, []byte{','})
	for i := range min(len(g), len(w)) {
		if !bytes.Equal(g[i], w[i]) {
			return fmt.Sprintf("float32 bits %#08x: GPU %q, floatfmt %q", math.Float32bits(row[i]), g[i], w[i])
		}
	}
	return fmt.Sprintf("row texts differ in length: GPU %d numbers, floatfmt %d", len(g), len(w))
}

// BenchmarkTextKernel times the text kernel alone (launch to synchronised)
// over batches of normalised 768-wide rows, on the GPU machine:
// `cuda.test -test.run XXX -test.bench TextKernel`.
func BenchmarkTextKernel(b *testing.B) {
	if err := Available(); err != nil {
		b.Skipf("no GPU: %v", err)
	}
	for _, rows := range []int{1, 32, 64, 128} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			e, _, _ := openTiny(b, Config{})
			k := newTextRunner(b, e, 768, rows)
			vals := unsafe.Slice((*float32)(k.host.p), 768*rows)
			for i := range vals {
				vals[i] = float32(math.Sin(float64(i)*0.7)) * 0.07
			}
			b.ResetTimer()
			for range b.N {
				if err := k.run(rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows*768)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mnumbers/s")
		})
	}
}

// TestCloseWithTextInFlight runs on the GPU machine: an engine closed with
// a text batch submitted and never awaited, and with another's text still
// held, closes at once after the holder releases (no 10 s drain wait).
func TestCloseWithTextInFlight(t *testing.T) {
	needGPU(t)
	e, _, rows := openTiny(t, Config{})
	b := engine.NewBatch(rows)
	var txt engine.Text
	if _, err := e.EmbedText(context.Background(), b, make([]float32, b.Rows()*e.Info().Dim), &txt); err != nil || txt.Release == nil {
		t.Fatalf("EmbedText: %v (release %v)", err, txt.Release != nil)
	}
	b.Text = true
	if _, err := e.Submit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		txt.Release()
	}()
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
}
