package engine

import "context"

// TokenEmbedder is an Engine that can also return the encoder's per-token
// hidden states, unpooled (text-embeddings-inference's /embed_all). Engines
// whose graph pools, or that never materialise token states, do not
// implement it.
type TokenEmbedder interface {
	Engine
	// EmbedTokens returns b.Tokens()×hidden float32s: row i's tokens in
	// order, every token of the row ([CLS] and [SEP] included), no padding.
	EmbedTokens(ctx context.Context, b *Batch) ([]float32, error)
}
