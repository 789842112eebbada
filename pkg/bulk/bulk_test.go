package bulk

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/m3ectl/m3ectl/pkg/engine"
	_ "github.com/m3ectl/m3ectl/pkg/engine/onnxrt" // the real CPU engine
)

func fixture(p ...string) string {
	return filepath.Join(append([]string{"..", "..", "testdata"}, p...)...)
}

// embedder opens the tiny fixture on ONNX Runtime, or skips (fails under
// CI) when the runtime is missing.
func embedder(t testing.TB) (*engine.Embedder, *engine.Model) {
	t.Helper()
	if err := engine.Available("cpu"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but ONNX Runtime is unavailable: %v", err)
		}
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	m, err := engine.ResolveModel(fixture("m3e-tiny", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.NewEmbedder(m, engine.EmbedderConfig{Kind: "cpu", Options: engine.Options{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, m
}

// corpus is texts of very different lengths, blank ones included, in an
// order that sorting by length must undo.
func corpus(n int) []string {
	base := []string{"酒店很好", "房间很小，但是很干净", "m3e 是一个中文句向量模型", "Hello, world!", "", "一"}
	out := make([]string, n)
	for i := range out {
		out[i] = strings.Repeat(base[i%len(base)], 1+(i*7)%23)
	}
	return out
}

func runTo(t *testing.T, e *engine.Embedder, m *engine.Model, texts []string, path string, so SinkOptions) Stats {
	t.Helper()
	second, err := engine.Open("cpu", m, engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	sink, err := CreateSink(path, e.Engine.Info().Dim, so)
	if err != nil {
		t.Fatal(err)
	}
	// Small chunks and batches: many of each, two engines, out of order.
	st, err := Run(context.Background(), &SliceSource{Texts: texts}, sink, e.Tokenizer, []engine.Engine{e.Engine, second},
		Options{Chunk: 37, BatchTokens: 300, BatchRows: 16, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if st.Texts != len(texts) || st.Batches < len(texts)/16 {
		t.Errorf("stats %+v for %d texts", st, len(texts))
	}
	return st
}

func readNPY(t *testing.T, path string) (descr string, rows, cols int, data []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("%s: no .npy v1.0 magic", path)
	}
	hl := int(binary.LittleEndian.Uint16(b[8:10]))
	if (10+hl)%64 != 0 {
		t.Errorf("header of %d bytes is not 64-byte aligned", 10+hl)
	}
	h := string(b[10 : 10+hl])
	if _, err := fmt.Sscanf(h, "{'descr': '%3s', 'fortran_order': False, 'shape': (%d, %d), }", &descr, &rows, &cols); err != nil {
		t.Fatalf("header %q: %v", h, err)
	}
	return descr, rows, cols, b[10+hl:]
}

func TestOutputsMatchEmbed(t *testing.T) {
	e, m := embedder(t)
	texts := corpus(200)
	want, err := e.EmbedTexts(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	dim := e.Engine.Info().Dim
	dir := t.TempDir()

	t.Run("npy float32", func(t *testing.T) {
		p := filepath.Join(dir, "e.npy")
		runTo(t, e, m, texts, p, SinkOptions{})
		descr, rows, cols, data := readNPY(t, p)
		if descr != "<f4" || rows != len(texts) || cols != dim || len(data) != rows*cols*4 {
			t.Fatalf("npy %s [%d, %d] with %d data bytes", descr, rows, cols, len(data))
		}
		for i := range texts {
			for k := 0; k < dim; k++ {
				got := math.Float32frombits(binary.LittleEndian.Uint32(data[(i*dim+k)*4:]))
				if d := math.Abs(float64(got - want[i][k])); d > 1e-5 {
					t.Fatalf("row %d col %d: %v, embed gives %v", i, k, got, want[i][k])
				}
			}
		}
	})
	t.Run("npy float16", func(t *testing.T) {
		p := filepath.Join(dir, "h.npy")
		runTo(t, e, m, texts, p, SinkOptions{Float16: true})
		descr, rows, cols, data := readNPY(t, p)
		if descr != "<f2" || rows != len(texts) || cols != dim || len(data) != rows*cols*2 {
			t.Fatalf("npy %s [%d, %d] with %d data bytes", descr, rows, cols, len(data))
		}
		for i := range texts {
			for k := 0; k < dim; k++ {
				got := halfToFloat(binary.LittleEndian.Uint16(data[(i*dim+k)*2:]))
				if d := math.Abs(float64(got - want[i][k])); d > 1e-3 {
					t.Fatalf("row %d col %d: %v, embed gives %v", i, k, got, want[i][k])
				}
			}
		}
	})
	t.Run("jsonl", func(t *testing.T) {
		p := filepath.Join(dir, "e.jsonl")
		runTo(t, e, m, texts, p, SinkOptions{})
		var ref bytes.Buffer
		if err := e.EmbedAll(context.Background(), texts, &ref); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, ref.Bytes()) {
			t.Fatal("the .jsonl output differs from embed's JSON lines")
		}
	})
	t.Run("parquet", func(t *testing.T) {
		p := filepath.Join(dir, "e.parquet")
		runTo(t, e, m, texts, p, SinkOptions{IncludeText: true})
		idx, txt, emb := readParquet(t, p)
		if len(idx) != len(texts) {
			t.Fatalf("%d rows, want %d", len(idx), len(texts))
		}
		for i := range texts {
			if idx[i] != int64(i) || txt[i] != texts[i] {
				t.Fatalf("row %d: index %d text %q", i, idx[i], txt[i])
			}
			for k := 0; k < dim; k++ {
				if emb[i*dim+k] != want[i][k] {
					t.Fatalf("row %d col %d: %v, embed gives %v", i, k, emb[i*dim+k], want[i][k])
				}
			}
		}
		// The written file is also a valid input: its text column reads back.
		src, closeSrc, err := OpenSource(p, FormatParquet, "text")
		if err != nil {
			t.Fatal(err)
		}
		defer closeSrc()
		var back []string
		for {
			chunk, err := src.Next(64)
			if err != nil {
				break
			}
			back = append(back, chunk...)
		}
		if strings.Join(back, "\n") != strings.Join(texts, "\n") {
			t.Fatal("texts read back from the Parquet output differ")
		}
	})
}

func readParquet(t *testing.T, path string) ([]int64, []string, []float32) {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	sc := tbl.Schema()
	if sc.Field(0).Name != "index" || sc.Field(1).Name != "text" || sc.Field(2).Name != "embedding" {
		t.Fatalf("schema %v", sc)
	}
	if lt, ok := sc.Field(2).Type.(*arrow.FixedSizeListType); !ok || lt.Elem().ID() != arrow.FLOAT32 {
		t.Fatalf("embedding column is %v, want fixed_size_list<float32>", sc.Field(2).Type)
	}
	var idx []int64
	var txt []string
	var emb []float32
	for _, c := range tbl.Column(0).Data().Chunks() {
		idx = append(idx, c.(*array.Int64).Int64Values()...)
	}
	for _, c := range tbl.Column(1).Data().Chunks() {
		s := c.(*array.String)
		for i := 0; i < s.Len(); i++ {
			txt = append(txt, s.Value(i))
		}
	}
	for _, c := range tbl.Column(2).Data().Chunks() {
		l := c.(*array.FixedSizeList)
		emb = append(emb, l.ListValues().(*array.Float32).Float32Values()...)
	}
	return idx, txt, emb
}

func TestInputFormats(t *testing.T) {
	dir := t.TempDir()
	lines := filepath.Join(dir, "in.txt")
	os.WriteFile(lines, []byte("一\n\n二 three\r\n"), 0o644)
	jl := filepath.Join(dir, "in.jsonl")
	os.WriteFile(jl, []byte(`{"text": "line\nbreak"}`+"\n\n"+`{"text": "二"}`+"\n"), 0o644)
	cases := []struct {
		path string
		want []string
	}{
		{lines, []string{"一", "", "二 three"}},
		{jl, []string{"line\nbreak", "二"}},
	}
	for _, c := range cases {
		src, closeSrc, err := OpenSource(c.path, InputFormat(c.path), "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := src.Next(10)
		closeSrc()
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s: %q, %v; want %q", filepath.Base(c.path), got, err, c.want)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"text": "ok"}`+"\n"+`{"txt": 1}`+"\n"), 0o644)
	src, closeSrc, _ := OpenSource(bad, FormatJSONL, "")
	defer closeSrc()
	if _, err := src.Next(10); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Errorf("bad JSON line: err %v, want it to name bad.jsonl:2", err)
	}
}

func TestParquetInputErrors(t *testing.T) {
	e, m := embedder(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "e.parquet")
	runTo(t, e, m, corpus(20), p, SinkOptions{IncludeText: true})
	if _, _, err := OpenSource(p, FormatParquet, "sentence"); err == nil || !errors.Is(err, errNoColumn) || !strings.Contains(err.Error(), "index, text, embedding") {
		t.Errorf("missing column: %v", err)
	}
	if _, _, err := OpenSource(p, FormatParquet, "index"); err == nil || !strings.Contains(err.Error(), "not a string column") {
		t.Errorf("int64 column: %v", err)
	}
	junk := filepath.Join(dir, "junk.parquet")
	os.WriteFile(junk, []byte("PAR1 this is not parquet"), 0o644)
	if _, _, err := OpenSource(junk, FormatParquet, "text"); err == nil {
		t.Error("a junk file opened as Parquet")
	}
}

// failingSource yields one chunk, then fails.
type failingSource struct{ calls int }

func (f *failingSource) Next(max int) ([]string, error) {
	f.calls++
	if f.calls == 1 {
		return corpus(min(max, 30)), nil
	}
	return nil, errors.New("disk on fire")
}

func (f *failingSource) Progress() (int64, int64) { return 0, 0 }

// A failed run leaves neither the output nor a temporary file behind.
func TestFailureLeavesNoFile(t *testing.T) {
	e, _ := embedder(t)
	dir := t.TempDir()
	for _, name := range []string{"e.npy", "e.parquet", "e.jsonl"} {
		p := filepath.Join(dir, name)
		sink, err := CreateSink(p, e.Engine.Info().Dim, SinkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(context.Background(), &failingSource{}, sink, e.Tokenizer, []engine.Engine{e.Engine}, Options{Chunk: 30})
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("%s: err %v", name, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: left %v behind", name, ents[0].Name())
		}
	}
}

func TestCreateSinkRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		o    SinkOptions
		want string
	}{
		{"e.csv", SinkOptions{}, "unknown extension"},
		{"e.parquet", SinkOptions{Float16: true}, "float16 applies to .npy"},
		{"e.npy", SinkOptions{IncludeText: true}, "include-text applies to .parquet"},
	} {
		if _, err := CreateSink(filepath.Join(dir, c.name), 8, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: err %v, want %q", c.name, c.o, err, c.want)
		}
	}
}

// halfToFloat decodes IEEE binary16.
func halfToFloat(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(mant, -24))
	case 0x1f:
		if mant != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1+mant/1024, exp-15))
}

// Float16 rounds to the nearest half, ties to even: checked at every
// half value, the midpoints between neighbours and just beside them.
func TestFloat16(t *testing.T) {
	for h := uint32(0); h < 0x7c00; h++ {
		v := halfToFloat(uint16(h))
		if got := Float16(v); got != uint16(h) {
			t.Fatalf("%#04x (%v) → %#04x", h, v, got)
		}
		if got := Float16(-v); got != uint16(h)|0x8000 {
			t.Fatalf("-%#04x → %#04x", h, got)
		}
		next := float64(halfToFloat(uint16(h + 1)))
		if h+1 == 0x7c00 {
			next = 65536 // where the next half would be, were there one
		}
		mid := float32((float64(v) + next) / 2)
		want := uint16(h)
		if h&1 == 1 {
			want = uint16(h + 1) // ties to even
		}
		if h+1 == 0x7c00 {
			want = 0x7c00 // the midpoint past the largest half overflows
		}
		if got := Float16(mid); got != want {
			t.Fatalf("midpoint of %#04x and %#04x (%v) → %#04x, want %#04x", h, h+1, mid, got, want)
		}
		if got := Float16(math.Nextafter32(mid, float32(next))); got != uint16(h+1) {
			t.Fatalf("just above the midpoint of %#04x → %#04x", h, got)
		}
		if got := Float16(math.Nextafter32(mid, v)); got != uint16(h) {
			t.Fatalf("just below the midpoint of %#04x → %#04x", h, got)
		}
	}
	if Float16(float32(math.Inf(1))) != 0x7c00 || Float16(1e6) != 0x7c00 || Float16(float32(math.NaN()))&0x7c00 != 0x7c00 {
		t.Error("infinities, overflow or NaN")
	}
}

func TestProgressLine(t *testing.T) {
	s := Stats{Texts: 500, Elapsed: 2e9, BytesDone: 25, BytesTotal: 100}
	if got := Line(s, 10); got != "[==        ]  25% 500 texts, 250 texts/s, 2s, ETA 6s" {
		t.Errorf("bar: %q", got)
	}
	s.BytesTotal = 0
	if got := Line(s, 10); got != "500 texts, 250 texts/s, 2s" {
		t.Errorf("unknown size: %q", got)
	}
	var buf bytes.Buffer
	p := NewProgress(&buf, false)
	p.Update(Stats{Texts: 1, Elapsed: 1e9})
	p.Update(Stats{Texts: 2, Elapsed: 6e9})
	p.Done(Stats{Texts: 3, Elapsed: 7e9})
	if lines := strings.Count(buf.String(), "\n"); lines != 2 {
		t.Errorf("non-terminal progress printed %d lines, want 2 (one per 5 s, one at the end): %q", lines, buf.String())
	}
}

func TestJSONLLinesParse(t *testing.T) {
	// Every line of the .jsonl sink is one JSON object with index and
	// embedding, whatever the chunking.
	e, m := embedder(t)
	p := filepath.Join(t.TempDir(), "e.jsonl")
	texts := corpus(50)
	runTo(t, e, m, texts, p, SinkOptions{})
	b, _ := os.ReadFile(p)
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var v struct {
			Index     int
			Embedding []float32
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Index != i || len(v.Embedding) != e.Engine.Info().Dim {
			t.Fatalf("line %d: %v %+v", i, err, v.Index)
		}
	}
}

// FuzzParquetSource: any bytes named .parquet open and read to an error or
// to texts, never a crash.
func FuzzParquetSource(f *testing.F) {
	e, m := embedder(f)
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.parquet")
	sink, err := CreateSink(p, e.Engine.Info().Dim, SinkOptions{IncludeText: true})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := Run(context.Background(), &SliceSource{Texts: corpus(5)}, sink, e.Tokenizer, []engine.Engine{e.Engine}, Options{}); err != nil {
		f.Fatal(err)
	}
	_ = m
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(append(append([]byte{}, seed[:8]...), seed[len(seed)-8:]...))
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.parquet")
		os.WriteFile(path, b, 0o644)
		src, closeSrc, err := OpenSource(path, FormatParquet, "text")
		if err != nil {
			return
		}
		defer closeSrc()
		for i := 0; i < 100; i++ {
			if _, err := src.Next(16); err != nil {
				return
			}
		}
	})
}
