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
	out := make([]float32, 0, b.Tokens()*hidden)
	for i := 0; i < b.Rows(); i++ {
		n := len(b.Row(i))
		base := i * seq * hidden
		out = append(out, e.states[base:base+n*hidden]...)
	}
	return out, nil
}
