package engine

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// Mask is the element type of an attention mask: what ONNX graphs take
// (int64 or int32) or a float weight.
type Mask interface {
	~int32 | ~int64 | ~float32
}

// HiddenStates wraps an encoder's last hidden state, row-major
// [batch, seq, hidden] float32, as a gorgonia tensor without copying it.
//
// The tensor gives the pooling code a checked, shaped view of the runtime's
// flat output buffer (dtype, rank and sizes verified once, here). The pooling
// loops then run over the backing slice directly: tensor's generic reductions
// (Sum along an axis, masked ops) allocate intermediates and are several times
// slower than one fused pass, and pooling sits on every request's path.
func HiddenStates(data []float32, batch, seq, hidden int) (*tensor.Dense, error) {
	if batch <= 0 || seq <= 0 || hidden <= 0 || len(data) != batch*seq*hidden {
		return nil, fmt.Errorf("hidden states: %d values do not make [%d, %d, %d]", len(data), batch, seq, hidden)
	}
	return tensor.New(tensor.WithShape(batch, seq, hidden), tensor.WithBacking(data)), nil
}

// statesView checks that t is a [batch, seq, hidden] float32 tensor and
// returns its sizes and backing data.
func statesView(t *tensor.Dense) (data []float32, batch, seq, hidden int, err error) {
	if t == nil || t.Dtype() != tensor.Float32 || t.Dims() != 3 {
		return nil, 0, 0, 0, fmt.Errorf("hidden states must be a 3-D float32 tensor")
	}
	if !t.IsNativelyAccessible() || t.RequiresIterator() {
		return nil, 0, 0, 0, fmt.Errorf("hidden states must be a contiguous tensor")
	}
	s := t.Shape()
	data, ok := t.Data().([]float32)
	if !ok {
		return nil, 0, 0, 0, fmt.Errorf("hidden states must be float32")
	}
	return data, s[0], s[1], s[2], nil
}

func checkPool[M Mask](dst []float32, t *tensor.Dense, mask []M) ([]float32, int, int, int, error) {
	data, b, s, h, err := statesView(t)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	if len(dst) < b*h {
		return nil, 0, 0, 0, fmt.Errorf("pool: destination holds %d values, need %d", len(dst), b*h)
	}
	if mask != nil && len(mask) != b*s {
		return nil, 0, 0, 0, fmt.Errorf("pool: mask has %d values, states have %d tokens", len(mask), b*s)
	}
	return data, b, s, h, nil
}

// MeanPool writes into dst (batch*hidden) the mean of each row's token states
// under the attention mask, as sentence-transformers does: sum(mask·h) /
// max(sum(mask), 1e-9). A nil mask counts every token.
func MeanPool[M Mask](dst []float32, states *tensor.Dense, mask []M) error {
	data, b, s, h, err := checkPool(dst, states, mask)
	if err != nil {
		return err
	}
	for i := 0; i < b; i++ {
		out := dst[i*h : (i+1)*h]
		clear(out)
		var weight float32
		for j := 0; j < s; j++ {
			w := float32(1)
			if mask != nil {
				w = float32(mask[i*s+j])
			}
			if w == 0 {
				continue
			}
			weight += w
			row := data[(i*s+j)*h : (i*s+j+1)*h]
			if w == 1 {
				for k, v := range row {
					out[k] += v
				}
			} else {
				for k, v := range row {
					out[k] += w * v
				}
			}
		}
		weight = max(weight, 1e-9)
		inv := 1 / weight
		for k := range out {
			out[k] *= inv
		}
	}
	return nil
}

// CLSPool writes into dst each row's first ([CLS]) token state.
func CLSPool(dst []float32, states *tensor.Dense) error {
	data, b, s, h, err := checkPool[int32](dst, states, nil)
	if err != nil {
		return err
	}
	for i := 0; i < b; i++ {
		copy(dst[i*h:(i+1)*h], data[i*s*h:i*s*h+h])
	}
	return nil
}

// MaxPool writes into dst the element-wise maximum of each row's token states
// under the mask. Masked-out tokens take no part, as in sentence-transformers
// (which sets them to -1e9 first); a row with no token yields zeros.
func MaxPool[M Mask](dst []float32, states *tensor.Dense, mask []M) error {
	data, b, s, h, err := checkPool(dst, states, mask)
	if err != nil {
		return err
	}
	for i := 0; i < b; i++ {
		out := dst[i*h : (i+1)*h]
		first := true
		for j := 0; j < s; j++ {
			if mask != nil && mask[i*s+j] == 0 {
				continue
			}
			row := data[(i*s+j)*h : (i*s+j+1)*h]
			if first {
				copy(out, row)
				first = false
				continue
			}
			for k, v := range row {
				if v > out[k] {
					out[k] = v
				}
			}
		}
		if first {
			clear(out)
		}
	}
	return nil
}

// Normalize L2-normalises each dim-wide row of v in place, as
// torch.nn.functional.normalize does (norm clamped below at 1e-12). The sum of
// squares is kept in float64 so the result does not depend on the width.
func Normalize(v []float32, dim int) {
	if dim <= 0 {
		return
	}
	for off := 0; off+dim <= len(v); off += dim {
		row := v[off : off+dim]
		var ss float64
		for _, x := range row {
			ss += float64(x) * float64(x)
		}
		n := math.Sqrt(ss)
		if n < 1e-12 {
			n = 1e-12
		}
		inv := float32(1 / n)
		for k := range row {
			row[k] *= inv
		}
	}
}

// Pool applies p to the states: the pooling mode, then Normalize when p says
// so. dst must hold batch*hidden values.
func Pool[M Mask](dst []float32, states *tensor.Dense, mask []M, p Pooling) error {
	var err error
	switch p.Mode {
	case PoolCLS:
		err = CLSPool(dst, states)
	case PoolMax:
		err = MaxPool(dst, states, mask)
	default:
		err = MeanPool(dst, states, mask)
	}
	if err != nil {
		return err
	}
	if p.Normalize {
		sh := states.Shape()
		Normalize(dst[:sh[0]*sh[2]], sh[2])
	}
	return nil
}
