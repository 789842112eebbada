package safetensors

import (
	"encoding/binary"
	"math"
	"os"
	"testing"
)

// TestHalfRNEMatches checks the branch-free conversion against FloatToHalf
// on every float32 near the edges (zero, the subnormal/normal border,
// overflow, Inf/NaN) and on a stride through all the others;
// M3ECTL_HALF_EXHAUSTIVE=1 checks all 2^32 (about 20 s).
func TestHalfRNEMatches(t *testing.T) {
	step := uint64(4093)
	if os.Getenv("M3ECTL_HALF_EXHAUSTIVE") == "1" {
		step = 1
	}
	check := func(u uint32) {
		f := math.Float32frombits(u)
		if got, want := floatToHalfRNE(f), FloatToHalf(f); got != want {
			t.Fatalf("%#08x (%g): got %#04x, want %#04x", u, f, got, want)
		}
	}
	for _, edge := range []uint32{0, 0x33000000, 0x38800000, 0x477fe000, 0x47800000, 0x7f800000} {
		for d := uint32(0); d < 1<<14; d++ {
			for _, s := range []uint32{0, 0x80000000} {
				check((edge + d) | s)
				check((edge - d) | s)
			}
		}
	}
	for u := uint64(0); u < 1<<32; u += step {
		check(uint32(u))
	}
}

func TestHalfBytes(t *testing.T) {
	vals := []float32{0, -0, 1, -2.5, 65504, 65520, 1e-8, 6.1e-5, float32(math.Inf(-1)), 0.1}
	f32 := make([]byte, 4*len(vals))
	f16 := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
		binary.LittleEndian.PutUint16(f16[2*i:], FloatToHalf(v))
	}
	for _, c := range []struct {
		dtype string
		data  []byte
	}{{"F32", f32}, {"F16", f16}} {
		tt := &Tensor{Name: "x", DType: c.dtype, Shape: []int{len(vals)}, Data: c.data}
		got, err := tt.HalfBytes([]byte{7})
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != 7 || string(got[1:]) != string(f16) {
			t.Fatalf("%s: got % x, want 07 % x", c.dtype, got, f16)
		}
	}
	if _, err := (&Tensor{Name: "i", DType: "I64", Shape: []int{1}, Data: make([]byte, 8)}).HalfBytes(nil); err == nil {
		t.Fatal("I64 converted without an error")
	}
}

func BenchmarkHalf(b *testing.B) {
	const n = 1 << 20
	src := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(src[4*i:], math.Float32bits(float32(math.Sin(float64(i)))*0.05))
	}
	tt := &Tensor{Name: "w", DType: "F32", Shape: []int{n}, Data: src}
	b.Run("old", func(b *testing.B) {
		b.SetBytes(4 * n)
		for i := 0; i < b.N; i++ {
			v, _ := tt.Float32()
			out := make([]byte, 2*n)
			for j, x := range v {
				binary.LittleEndian.PutUint16(out[2*j:], FloatToHalf(x))
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(4 * n)
		dst := make([]byte, 0, 2*n)
		for i := 0; i < b.N; i++ {
			dst, _ = tt.HalfBytes(dst[:0])
		}
	})
}
