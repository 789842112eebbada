package engine

import (
	"math"
	"testing"

	"gorgonia.org/tensor"
)

// states3 builds [batch, seq, hidden] states where token j of row i has value
// base(i, j) + k in component k.
func states3(t testing.TB, b, s, h int, base func(i, j int) float32) []float32 {
	t.Helper()
	d := make([]float32, b*s*h)
	for i := 0; i < b; i++ {
		for j := 0; j < s; j++ {
			for k := 0; k < h; k++ {
				d[(i*s+j)*h+k] = base(i, j) + float32(k)
			}
		}
	}
	return d
}

func TestPool(t *testing.T) {
	// Row 0 has 3 real tokens (values 1, 2, 3), row 1 has 1 real token (10)
	// followed by padding with a huge value that must not leak in.
	data := states3(t, 2, 3, 2, func(i, j int) float32 {
		if i == 1 && j > 0 {
			return 1000
		}
		return float32(1+j) + float32(9*i)
	})
	mask := []int64{1, 1, 1, 1, 0, 0}
	tests := []struct {
		name string
		p    Pooling
		want []float32
	}{
		{"mean under mask", Pooling{PoolMean, false}, []float32{2, 3, 10, 11}},
		{"cls", Pooling{PoolCLS, false}, []float32{1, 2, 10, 11}},
		{"max under mask", Pooling{PoolMax, false}, []float32{3, 4, 10, 11}},
		{"mean then normalize", Pooling{PoolMean, true}, []float32{2 / float32(math.Sqrt(13)), 3 / float32(math.Sqrt(13)), 10 / float32(math.Sqrt(221)), 11 / float32(math.Sqrt(221))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := HiddenStates(data, 2, 3, 2)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, 4)
			if err := Pool(got, st, mask, tc.p); err != nil {
				t.Fatal(err)
			}
			for k := range got {
				if math.Abs(float64(got[k]-tc.want[k])) > 1e-6 {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestPoolRejectsBadShapes(t *testing.T) {
	if _, err := HiddenStates(make([]float32, 5), 1, 2, 3); err == nil {
		t.Error("HiddenStates accepted 5 values for [1,2,3]")
	}
	st, _ := HiddenStates(make([]float32, 6), 1, 2, 3)
	if err := MeanPool(make([]float32, 2), st, []int32{1, 1}); err == nil {
		t.Error("MeanPool accepted a short destination")
	}
	if err := MeanPool(make([]float32, 3), st, []int32{1}); err == nil {
		t.Error("MeanPool accepted a short mask")
	}
}

func TestNormalizeZeroVectorStaysFinite(t *testing.T) {
	v := []float32{0, 0, 3, 4}
	Normalize(v, 2)
	want := []float32{0, 0, 0.6, 0.8}
	for k := range v {
		if math.Abs(float64(v[k]-want[k])) > 1e-7 {
			t.Fatalf("got %v, want %v", v, want)
		}
	}
}

// BenchmarkMeanPool pools an m3e-base-sized batch (32 rows × 128 tokens × 768).
func BenchmarkMeanPool(b *testing.B) {
	const rows, seq, hidden = 32, 128, 768
	data := make([]float32, rows*seq*hidden)
	for i := range data {
		data[i] = float32(i%97) / 97
	}
	mask := make([]int64, rows*seq)
	for i := range mask {
		if i%seq < 100 {
			mask[i] = 1
		}
	}
	st, _ := HiddenStates(data, rows, seq, hidden)
	dst := make([]float32, rows*hidden)
	b.SetBytes(int64(len(data) * 4))
	for b.Loop() {
		if err := Pool(dst, st, mask, DefaultPooling); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeanPoolTensorOps is the same pooling written with gorgonia's own
// operations (a view per row, Sum along the token axis, scalar division):
// the comparison behind pool.go's choice of a fused loop over the backing data.
func BenchmarkMeanPoolTensorOps(b *testing.B) {
	const rows, seq, hidden, real = 32, 128, 768, 100
	data := make([]float32, rows*seq*hidden)
	for i := range data {
		data[i] = float32(i%97) / 97
	}
	st, _ := HiddenStates(data, rows, seq, hidden)
	dst := make([]float32, rows*hidden)
	b.SetBytes(int64(len(data) * 4))
	for b.Loop() {
		for i := 0; i < rows; i++ {
			v, err := st.Slice(tensor.S(i), tensor.S(0, real))
			if err != nil {
				b.Fatal(err)
			}
			sum, err := tensor.Sum(v, 0)
			if err != nil {
				b.Fatal(err)
			}
			mean, err := tensor.Div(sum, float32(real))
			if err != nil {
				b.Fatal(err)
			}
			copy(dst[i*hidden:], mean.Data().([]float32))
		}
	}
}

// TestMeanPoolMatchesTensorOps pins the fused loop to gorgonia's reduction.
func TestMeanPoolMatchesTensorOps(t *testing.T) {
	const rows, seq, hidden = 3, 5, 4
	data := make([]float32, rows*seq*hidden)
	for i := range data {
		data[i] = float32((i*7)%13) - 6
	}
	lens := []int{5, 2, 3}
	mask := make([]int32, rows*seq)
	for i, l := range lens {
		for j := 0; j < l; j++ {
			mask[i*seq+j] = 1
		}
	}
	st, _ := HiddenStates(data, rows, seq, hidden)
	got := make([]float32, rows*hidden)
	if err := MeanPool(got, st, mask); err != nil {
		t.Fatal(err)
	}
	for i, l := range lens {
		v, err := st.Slice(tensor.S(i), tensor.S(0, l))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := tensor.Sum(v, 0)
		if err != nil {
			t.Fatal(err)
		}
		for k, s := range sum.Data().([]float32) {
			if want := s / float32(l); math.Abs(float64(got[i*hidden+k]-want)) > 1e-6 {
				t.Fatalf("row %d comp %d: %g, want %g", i, k, got[i*hidden+k], want)
			}
		}
	}
}
