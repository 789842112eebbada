package repository

import (
	"context"
	"fmt"
	"sync"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// tokenStates serves per-token hidden states (TEI's /embed_all) from an
// engine of its own, opened on the first request: the batcher's instances
// pool inside the batch they run, so token states cannot come out of them.
// It costs one more ONNX Runtime session of the model while it is loaded,
// and its requests do not go through the batcher or its statistics.
type tokenStates struct {
	src     *engine.Model
	opts    engine.Options
	backend string
	pooled  bool

	mu  sync.Mutex // one request at a time on the engine
	eng engine.TokenEmbedder
}

// EmbedTokens returns, for each row of token ids, the hidden state of every
// token ([row][token][hidden]). Models on the CUDA engine and graphs that
// pool themselves have none; that, like an engine failure, is an *Error of
// kind Internal, which protocols answer as "the backend cannot" (TEI: 424).
func (m *Model) EmbedTokens(ctx context.Context, rows [][]int32) ([][][]float32, error) {
	t := &m.tokens
	if t.backend != "onnxruntime" {
		return nil, &Error{Kind: Internal, Msg: fmt.Sprintf("model %s runs on the %s engine, which returns pooled sentence embeddings only; per-token states need the cpu engine (ONNX Runtime)", m.name, t.backend)}
	}
	if t.pooled {
		return nil, &Error{Kind: Internal, Msg: fmt.Sprintf("model %s's ONNX graph pools itself (output embeddings [batch, %d]); per-token states need a graph with last_hidden_state (m3ectl export --pooling none)", m.name, m.dim)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.eng == nil {
		o := t.opts
		o.MaxBatchRows = max(1, m.MaxBatchSize())
		e, err := engine.Open("cpu", t.src, o)
		if err != nil {
			return nil, fmt.Errorf("open the token-state engine of %s: %w", m.name, err)
		}
		te, ok := e.(engine.TokenEmbedder)
		if !ok {
			_ = e.Close()
			return nil, &Error{Kind: Internal, Msg: fmt.Sprintf("model %s's engine cannot return per-token states", m.name)}
		}
		t.eng = te
	}
	b := engine.NewBatch(rows)
	flat, err := t.eng.EmbedTokens(ctx, b)
	if err != nil {
		return nil, &Error{Kind: Internal, Msg: fmt.Sprintf("model %s: %v", m.name, err)}
	}
	hidden := 0
	if b.Tokens() > 0 {
		hidden = len(flat) / b.Tokens()
	}
	out := make([][][]float32, len(rows))
	at := 0
	for i := range rows {
		n := len(b.Row(i))
		out[i] = make([][]float32, n)
		for j := range n {
			out[i][j] = flat[(at+j)*hidden : (at+j+1)*hidden]
		}
		at += n
	}
	return out, nil
}

func (t *tokenStates) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.eng != nil {
		_ = t.eng.Close()
		t.eng = nil
	}
}
