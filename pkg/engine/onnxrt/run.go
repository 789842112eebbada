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
	n, _, err := e.forward(context.Background(), b, 0, 1)
	if err != nil {
		return 0, fmt.Errorf("probe run: %w", err)
	}
	return n, nil
}

// Info describes the loaded model.
func (e *Engine) Info() engine.Info { return e.info }

// Embed runs the encoder on the batch, a part at a time (see parts), each
// part padded to its own longest row, and pools each row under its
// attention mask.
func (e *Engine) Embed(ctx context.Context, b *engine.Batch) ([]float32, error) {
	if b.Rows() == 0 {
		return []float32{}, nil
	}
	if err := e.check(ctx, b); err != nil {
		return nil, err
	}
	var out []float32
	err := e.eachPart(ctx, b, func(lo, hi, hidden, seq int) error {
		if out == nil {
			out = make([]float32, b.Rows()*hidden)
		}
		rows, dst := hi-lo, out[lo*hidden:hi*hidden]
		if e.pooled {
			copy(dst, e.states[:rows*hidden])
			return nil
		}
		states, err := engine.HiddenStates(e.states[:rows*seq*hidden], rows, seq, hidden)
		if err != nil {
			return err
		}
		return engine.Pool(dst, states, e.mask32[:rows*seq], e.info.Pooling)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (e *Engine) check(ctx context.Context, b *engine.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if err := b.Validate(e.info.MaxSeqLen, e.info.VocabSize); err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	return nil
}

// One Run's activations grow with rows×seq² (attention scores and
// probabilities: heads×rows×seq² floats each, ~134 MB apiece for the tiny
// model's 4 heads at 32×512) and with rows×seq (hidden and feed-forward
// states), and ONNX Runtime's CPU arena keeps the high-water mark of the
// largest Run for the session's life: one full 32×512 batch left the tiny
// model's server at ~620 MB for good. A batch is therefore run in parts
// whose padded work stays under these budgets. On CPU a part of a few
// thousand tokens already keeps every core busy, so throughput does not
// suffer (BenchmarkEmbedLongParts), and short-text batches (32×30 tokens)
// are never split.
const (
	// attentionBudget bounds rows×seq² of one Run: 4×512², 16 MB per
	// attention tensor for 4 heads, 48 MB for BERT-base's 12.
	attentionBudget = 4 * 512 * 512
	// tokenBudget bounds rows×seq (padded tokens) of one Run.
	tokenBudget = 4096
)

// parts returns where the part starting at row lo ends: rows are added
// while the part, padded to its longest row, stays within the budgets (a
// part always holds at least one row).
func (e *Engine) parts(b *engine.Batch, lo int) int {
	seq, hi := len(b.Row(lo)), lo+1
	for ; hi < b.Rows(); hi++ {
		l := max(seq, len(b.Row(hi)))
		if n := hi - lo + 1; n*l*l > e.attentionBudget || n*l > e.tokenBudget {
			break
		}
		seq = l
	}
	return hi
}

// eachPart runs the batch a part at a time and calls f after each part
// with its rows [lo, hi) and the hidden width and padded length of the
// states forward left in e.states.
func (e *Engine) eachPart(ctx context.Context, b *engine.Batch, f func(lo, hi, hidden, seq int) error) error {
	for lo := 0; lo < b.Rows(); {
		hi := e.parts(b, lo)
		hidden, seq, err := e.forward(ctx, b, lo, hi)
		if err != nil {
			return err
		}
		if err := f(lo, hi, hidden, seq); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// forward runs the session on rows [lo, hi) of b, padded to their longest
// row, and leaves the hidden states in e.states. It returns the hidden
// width and padded length.
func (e *Engine) forward(ctx context.Context, b *engine.Batch, lo, hi int) (hidden, seq int, err error) {
	rows := hi - lo
	for i := lo; i < hi; i++ {
		seq = max(seq, len(b.Row(i)))
	}
	n := rows * seq
	e.fill(b, lo, rows, seq)
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

// fill writes the padded ids, mask and zero token types for rows
// [lo, lo+rows) of b.
func (e *Engine) fill(b *engine.Batch, lo, rows, seq int) {
	n := rows * seq
	e.ids64, e.mask64, e.zero64 = grow(e.ids64, n), grow(e.mask64, n), grow(e.zero64, n)
	e.ids32, e.mask32, e.zero32 = grow(e.ids32, n), grow(e.mask32, n), grow(e.zero32, n)
	for i := 0; i < rows; i++ {
		row := b.Row(lo + i)
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
