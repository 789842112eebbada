package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"
)

// build makes a safetensors file from a header map and data bytes.
func build(t testing.TB, header map[string]any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8, 8+len(h)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(h)))
	return append(append(b, h...), data...)
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func TestParseReadsEveryDType(t *testing.T) {
	data := f32bytes(1, -2.5)
	data = binary.LittleEndian.AppendUint16(data, FloatToHalf(0.5))
	data = binary.LittleEndian.AppendUint16(data, FloatToHalf(-3))
	data = binary.LittleEndian.AppendUint16(data, uint16(math.Float32bits(1.5)>>16)) // bf16
	file := build(t, map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"a":            map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}},
		"h":            map[string]any{"dtype": "F16", "shape": []int{1, 2}, "data_offsets": []int{8, 12}},
		"b":            map[string]any{"dtype": "BF16", "shape": []int{1}, "data_offsets": []int{12, 14}},
	}, data)
	f, err := Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	for _, c := range []struct {
		name string
		want []float32
	}{{"a", []float32{1, -2.5}}, {"h", []float32{0.5, -3}}, {"b", []float32{1.5}}} {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.Tensor(c.name).Float32()
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Fatalf("%s = %v, want %v", c.name, got, c.want)
				}
			}
		})
	}
	if names := f.Names(); len(names) != 3 || names[0] != "a" {
		t.Errorf("names %v", names)
	}
}

func TestParseRejectsMalformedFiles(t *testing.T) {
	ok := map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}}
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"short", []byte{1, 2, 3}},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 1000), '{', '}')},
		{"bad json", append(binary.LittleEndian.AppendUint64(nil, 3), "{x}"...)},
		{"offsets past data", build(t, map[string]any{"a": ok}, f32bytes(1))},
		{"size mismatch", build(t, map[string]any{"a": map[string]any{"dtype": "F32", "shape": []int{3}, "data_offsets": []int{0, 8}}}, f32bytes(1, 2))},
		{"unknown dtype", build(t, map[string]any{"a": map[string]any{"dtype": "Q4", "shape": []int{2}, "data_offsets": []int{0, 8}}}, f32bytes(1, 2))},
		{"negative dim", build(t, map[string]any{"a": map[string]any{"dtype": "F32", "shape": []int{-2}, "data_offsets": []int{0, 8}}}, f32bytes(1, 2))},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(c.file); !errors.Is(err, ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
}

func TestHalfRoundTrip(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00}, {5.9604645e-08, 0x0001},
		{1.00048828125, 0x3c00}, // halfway between 1 and next: rounds to even
		{1.0014648, 0x3c02},
	} {
		if got := FloatToHalf(c.in); got != c.want {
			t.Errorf("FloatToHalf(%v) = %#x, want %#x", c.in, got, c.want)
		}
	}
	for h := 0; h < 0x7c00; h++ { // every finite positive half survives a round trip
		if got := FloatToHalf(HalfToFloat(uint16(h))); got != uint16(h) {
			t.Fatalf("round trip of %#x gave %#x", h, got)
		}
	}
}

func TestFixtureModelLoads(t *testing.T) {
	f, err := Open("../../../testdata/m3e-tiny/hf/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	w := f.Tensor("embeddings.word_embeddings.weight")
	if w == nil || w.Shape[0] != 21128 || w.Shape[1] != 64 {
		t.Fatalf("word embeddings %+v", w)
	}
	if len(f.Names()) != 39 {
		t.Errorf("%d tensors, want 39", len(f.Names()))
	}
}

func FuzzParse(f *testing.F) {
	f.Add(build(f, map[string]any{"a": map[string]any{"dtype": "F16", "shape": []int{2}, "data_offsets": []int{0, 4}}}, []byte{0, 60, 0, 188}))
	f.Add([]byte{})
	f.Add(append(binary.LittleEndian.AppendUint64(nil, 2), "{}"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		for _, n := range file.Names() {
			tt := file.Tensor(n)
			if len(tt.Data) != tt.Elements()*dtypeSize(tt.DType) {
				t.Fatalf("tensor %s: %d bytes for %d elements", n, len(tt.Data), tt.Elements())
			}
			_, _ = tt.Float32()
		}
	})
}

// OpenMapped parses the same tensors as Open.
func TestOpenMappedMatchesOpen(t *testing.T) {
	path := filepath.Join("..", "..", "..", "testdata", "m3e-tiny", "hf", "model.safetensors")
	want, err := Open(path)
	if err != nil {
		t.Skip(err)
	}
	m, err := OpenMapped(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if fmt.Sprint(m.Names()) != fmt.Sprint(want.Names()) {
		t.Fatalf("names differ")
	}
	for _, n := range want.Names() {
		a, b := want.Tensor(n), m.Tensor(n)
		if a.DType != b.DType || fmt.Sprint(a.Shape) != fmt.Sprint(b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Fatalf("tensor %s differs", n)
		}
	}
	if _, err := OpenMapped(filepath.Join(t.TempDir(), "missing.safetensors")); err == nil {
		t.Error("a missing file opened")
	}
}
