package repository

import (
	"context"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// InferIDs embeds rows given as token ids (OpenAI's and TEI's token-id
// inputs) through the same batcher as Infer; the ids are used as given.
// Errors are *Error.
func (m *Model) InferIDs(ctx context.Context, rows [][]int32) (*Result, error) {
	emb, tokens, err := m.sched.InferIDs(ctx, rows)
	if err != nil {
		return nil, err
	}
	return &Result{Embeddings: emb, Tokens: tokens}, nil
}

// Tokenizer is the tokenizer the model's requests are encoded with (its
// max length and lowercasing as configured), for the tokenize and decode
// endpoints.
func (m *Model) Tokenizer() *tokenizer.Tokenizer { return m.tok }

// Pooling is how the engine pools token states and whether it normalises.
func (m *Model) Pooling() engine.Pooling { return m.pooling }

// Truncates reports whether over-long texts are cut (true) or refused.
func (m *Model) Truncates() bool { return m.truncate }
