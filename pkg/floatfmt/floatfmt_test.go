package floatfmt

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

func check(t *testing.T, f float32) {
	t.Helper()
	want := strconv.AppendFloat(nil, float64(f), 'g', -1, 32)
	if got := AppendFloat32(nil, f); string(got) != string(want) {
		t.Fatalf("%#08x (%v): got %q, want %q", math.Float32bits(f), f, got, want)
	}
}

func TestSpecialValues(t *testing.T) {
	for _, f := range []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.1, 0.5, 1e6, 999999, 1234567, 123456,
		1e-4, 9.99e-5, 1e-5, 1.5e-05, 3.4028235e38, -3.4028235e38, 1e-45, 1.1754944e-38, 1.1754942e-38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 16777216, 16777215, 33554432, 1e10, 7e22, 0.3} {
		check(t, f)
	}
	for e := -45; e <= 38; e++ {
		check(t, float32(math.Pow10(e)))
		check(t, float32(2*math.Pow10(e)))
	}
	for e := -149; e <= 127; e++ {
		check(t, float32(math.Ldexp(1, e)))
	}
}

func TestRandomBitPatterns(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// 300k under CI (about a second with -race); FLOATFMT_EXHAUSTIVE=1
	// checks every embedding-range value instead.
	n := 300_000
	if testing.Short() {
		n = 50_000
	}
	for i := 0; i < n; i++ {
		check(t, math.Float32frombits(r.Uint32()))
	}
}

// TestEmbeddingRange checks every float32 of the magnitudes embeddings
// hold, [2^-20, 2): 21 binades of 2^23 values each. It takes about a
// minute, so it runs only with FLOATFMT_EXHAUSTIVE=1; CI checks a stride.
func TestEmbeddingRange(t *testing.T) {
	lo := math.Float32bits(float32(math.Ldexp(1, -20)))
	hi := math.Float32bits(2)
	step := uint32(9973)
	if os.Getenv("FLOATFMT_EXHAUSTIVE") == "1" {
		step = 1
	}
	for u := lo; u < hi; u += step {
		check(t, math.Float32frombits(u))
		check(t, -math.Float32frombits(u))
	}
}

func TestAllSubnormalsAndExponentEdges(t *testing.T) {
	for m := uint32(0); m < 1<<23; m += 997 {
		check(t, math.Float32frombits(m))
	}
	for e := uint32(1); e < 255; e++ {
		for _, m := range []uint32{0, 1, 2, 3, 1<<23 - 1, 1<<23 - 2, 1 << 22} {
			check(t, math.Float32frombits(e<<23|m))
		}
	}
}

func FuzzAppendFloat32(f *testing.F) {
	f.Add(uint32(0x3f800000))
	f.Add(uint32(0x00000001))
	f.Fuzz(func(t *testing.T, u uint32) { check(t, math.Float32frombits(u)) })
}

var sink []byte

func benchValues() []float32 {
	r := rand.New(rand.NewPCG(3, 4))
	v := make([]float32, 768)
	var ss float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		ss += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(ss))
	}
	return v
}

// BenchmarkEmbedding768 formats one m3e-base-wide normalised embedding.
func BenchmarkEmbedding768(b *testing.B) {
	v := benchValues()
	buf := make([]byte, 0, 16<<10)
	b.Run("floatfmt", func(b *testing.B) {
		for b.Loop() {
			buf = buf[:0]
			for _, x := range v {
				buf = AppendFloat32(buf, x)
				buf = append(buf, ',')
			}
		}
		sink = buf
	})
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			buf = AppendFloat32s(buf[:0], v, ',', "null")
		}
		sink = buf
	})
	// 64 distinct embeddings, as a server formats them: a repeated one
	// lets the branch predictor learn its digits' pattern.
	many := distinctEmbeddings(v, 64)
	b.Run("list-64", func(b *testing.B) {
		i := 0
		for b.Loop() {
			buf = AppendFloat32s(buf[:0], many[i%64], ',', "null")
			i++
		}
		sink = buf
	})
	b.Run("strconv", func(b *testing.B) {
		for b.Loop() {
			buf = buf[:0]
			for _, x := range v {
				buf = strconv.AppendFloat(buf, float64(x), 'g', -1, 32)
				buf = append(buf, ',')
			}
		}
		sink = buf
	})
}

// TestAppendFloat32s: the list form writes what AppendFloat32 writes for
// each number, separated, with the given text for NaN and infinities, and
// leaves what the buffer held before.
func TestAppendFloat32s(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	v := benchValues()
	for i := 0; i < 4000; i++ {
		v = append(v, math.Float32frombits(r.Uint32()))
	}
	v = append(v, 0, float32(math.Copysign(0, -1)), 1e-45, 3.4028235e38, float32(math.NaN()), float32(math.Inf(-1)), 123456, 1e6)
	var want []byte
	want = append(want, "prefix:"...)
	for i, f := range v {
		if i > 0 {
			want = append(want, ',')
		}
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			want = append(want, "null"...)
			continue
		}
		want = strconv.AppendFloat(want, float64(f), 'g', -1, 32)
	}
	for _, c := range []int{0, 10, 1 << 16} { // no spare capacity, a little, plenty
		b := append(make([]byte, 0, 7+c), "prefix:"...)
		if got := AppendFloat32s(b, v, ',', "null"); string(got) != string(want) {
			t.Fatalf("cap %d: lists differ (%d vs %d bytes)", c, len(got), len(want))
		}
	}
	if got := AppendFloat32s(nil, nil, ',', "null"); len(got) != 0 {
		t.Errorf("empty list: %q", got)
	}
}

// distinctEmbeddings makes n embeddings of v's values, each drawn at random
// with a random sign: a server formats a different embedding every time.
func distinctEmbeddings(v []float32, n int) [][]float32 {
	r := rand.New(rand.NewPCG(9, 9))
	many := make([][]float32, n)
	for k := range many {
		many[k] = make([]float32, len(v))
		for i := range v {
			many[k][i] = v[r.IntN(len(v))]
			if r.IntN(2) == 0 {
				many[k][i] = -many[k][i]
			}
		}
	}
	return many
}
