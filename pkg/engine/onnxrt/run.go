package onnxrt

import (
	"context"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// probeDim runs a one-token batch to learn a symbolic output width.
func (e *Engine) probeDim() (int, error) {
	b := engine.NewBatch([][]int32{{0}})
	n, _, err := e.forward(context.Background(), b)
	if err != nil {
		return 0, fmt.Errorf("probe run: %w", err)
	}
	return n, nil
}

// Info describes the loaded model.
func (e *Engine) Info() engine.Info { return e.info }

// Embed pads the batch to its longest row, runs the encoder and pools each
// row under its attention mask.
func (e *Engine) Embed(ctx context.Context, b *engine.Batch) ([]float32, error) {
	if b.Rows() == 0 {
		return []float32{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", e.path, err)
	}
	if err := b.Validate(e.info.MaxSeqLen, e.info.VocabSize); err != nil {
		return nil, fmt.Errorf("%s: %w", e.path, err)
	}
	hidden, seq, err := e.forward(ctx, b)
	if err != nil {
		return nil, err
	}
	if e.pooled {
		return append([]float32(nil), e.states[:b.Rows()*hidden]...), nil
	}
	states, err := engine.HiddenStates(e.states[:b.Rows()*seq*hidden], b.Rows(), seq, hidden)
	if err != nil {
		return nil, err
	}
	out := make([]float32, b.Rows()*hidden)
	if err := engine.Pool(out, states, e.mask32[:b.Rows()*seq], e.info.Pooling); err != nil {
		return nil, err
	}
	return out, nil
}

// forward runs the session on b, padded to its longest row, and leaves the
// hidden states in e.states. It returns the hidden width and padded length.
func (e *Engine) forward(ctx context.Context, b *engine.Batch) (hidden, seq int, err error) {
	rows := b.Rows()
	seq = b.MaxLen()
	n := rows * seq
	e.fill(b, rows, seq)
	shape := ort.NewShape(int64(rows), int64(seq))
	values := make([]ort.Value, len(e.inputs))
	defer func() {
		for _, v := range values {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, in := range e.inputs {
		var v ort.Value
		switch {
		case in.int32:
			v, err = ort.NewTensor(shape, pick(in.role, e.ids32, e.mask32, e.zero32)[:n])
		default:
			v, err = ort.NewTensor(shape, pick(in.role, e.ids64, e.mask64, e.zero64)[:n])
		}
		if err != nil {
			return 0, 0, fmt.Errorf("input %s: %w", in.name, err)
		}
		values[i] = v
	}
	outputs := []ort.Value{nil}
	if e.info.Dim > 0 {
		// Let ONNX Runtime write straight into our buffer.
		need, shape := n*e.info.Dim, ort.NewShape(int64(rows), int64(seq), int64(e.info.Dim))
		if e.pooled {
			need, shape = rows*e.info.Dim, ort.NewShape(int64(rows), int64(e.info.Dim))
		}
		if cap(e.states) < need {
			e.states = make([]float32, need)
		}
		t, err := ort.NewTensor(shape, e.states[:need])
		if err != nil {
			return 0, 0, fmt.Errorf("output %s: %w", e.output, err)
		}
		outputs[0] = t
	}
	defer func() {
		if outputs[0] != nil {
			outputs[0].Destroy()
		}
	}()
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { _ = e.run.Terminate(); close(terminated) })
	err = e.sess.RunWithOptions(values, outputs, e.run)
	if !stop() {
		// The context ended during the run: clear the flag for the next one.
		<-terminated
		_ = e.run.UnsetTerminate()
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, fmt.Errorf("%s: %w", e.path, ctx.Err())
		}
		return 0, 0, fmt.Errorf("run %s: %w", e.path, trimORT(err))
	}
	if e.info.Dim > 0 {
		return e.info.Dim, seq, nil
	}
	t, ok := outputs[0].(*ort.Tensor[float32])
	if !ok {
		return 0, 0, fmt.Errorf("%s: output %s is not a float32 tensor", e.path, e.output)
	}
	s := t.GetShape()
	if e.pooled {
		if len(s) != 2 || s[0] != int64(rows) {
			return 0, 0, fmt.Errorf("%s: output %s has shape %v, want [%d, hidden]", e.path, e.output, s, rows)
		}
		e.states = append(e.states[:0], t.GetData()...)
		return int(s[1]), seq, nil
	}
	if len(s) != 3 || s[0] != int64(rows) || s[1] != int64(seq) {
		return 0, 0, fmt.Errorf("%s: output %s has shape %v, want [%d, %d, hidden]", e.path, e.output, s, rows, seq)
	}
	e.states = append(e.states[:0], t.GetData()...)
	return int(s[2]), seq, nil
}

func pick[T any](r inputRole, ids, mask, zero T) T {
	switch r {
	case roleMask:
		return mask
	case roleTypes:
		return zero
	default:
		return ids
	}
}

// fill writes the padded ids, mask and zero token types for b.
func (e *Engine) fill(b *engine.Batch, rows, seq int) {
	n := rows * seq
	e.ids64, e.mask64, e.zero64 = grow(e.ids64, n), grow(e.mask64, n), grow(e.zero64, n)
	e.ids32, e.mask32, e.zero32 = grow(e.ids32, n), grow(e.mask32, n), grow(e.zero32, n)
	for i := 0; i < rows; i++ {
		row := b.Row(i)
		for j := 0; j < seq; j++ {
			k := i*seq + j
			if j < len(row) {
				e.ids64[k], e.ids32[k] = int64(row[j]), row[j]
				e.mask64[k], e.mask32[k] = 1, 1
			} else {
				e.ids64[k], e.ids32[k] = 0, 0
				e.mask64[k], e.mask32[k] = 0, 0
			}
		}
	}
}

// grow returns s with length n, zeroing nothing (fill overwrites every cell
// it uses; token types stay zero because they are never written).
func grow[T int32 | int64](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n, n+n/2)
}

// Close frees the session.
func (e *Engine) Close() error {
	var err error
	if e.run != nil {
		err = e.run.Destroy()
		e.run = nil
	}
	if e.sess != nil {
		if derr := e.sess.Destroy(); derr != nil && err == nil {
			err = derr
		}
		e.sess = nil
	}
	return err
}
