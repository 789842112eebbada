package onnxrt

import (
	"context"
	"fmt"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

var _ engine.TokenEmbedder = (*Engine)(nil)

// EmbedTokens runs the encoder and returns each row's hidden states without
// the padding. A graph that pools itself has no token states to give.
func (e *Engine) EmbedTokens(ctx context.Context, b *engine.Batch) ([]float32, error) {
	if e.info.Pooled {
		return nil, fmt.Errorf("%s pools inside its graph (output [batch, %d]); per-token states need a graph that outputs last_hidden_state (m3ectl export --pooling none)", e.path, e.info.Dim)
	}
	if b.Rows() == 0 {
		return []float32{}, nil
	}
	if err := e.check(ctx, b); err != nil {
		return nil, err
	}
	var out []float32
	err := e.eachPart(ctx, b, func(lo, hi, hidden, seq int) error {
		if out == nil {
			out = make([]float32, 0, b.Tokens()*hidden)
		}
		for i := lo; i < hi; i++ {
			base := (i - lo) * seq * hidden
			out = append(out, e.states[base:base+len(b.Row(i))*hidden]...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
