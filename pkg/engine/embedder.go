package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// DefaultBatchSize is the rows per engine call when Embedder.BatchSize is 0.
const DefaultBatchSize = 32

// Embedder turns texts into embeddings: tokenize, group by length, run the
// engine, return vectors in input order. It is what the CLI uses; the server
// has its own dynamic batcher in front of the same Engine.
type Embedder struct {
	Tokenizer *tokenizer.Tokenizer
	Engine    Engine
	BatchSize int // rows per engine call; 0: DefaultBatchSize
}

// ErrVocabMismatch marks a tokenizer whose vocabulary does not fit the
// model's word-embedding table.
var ErrVocabMismatch = errors.New("vocabulary does not match the model")

// CheckVocab fails when the tokenizer's vocabulary and the model's embedding
// table differ in size: ids would then point at the wrong rows (or past the
// table) and every embedding would be silently wrong. Unknown sizes pass.
func CheckVocab(tok *tokenizer.Tokenizer, tokPath string, info Info, modelPath string) error {
	if tok == nil || info.VocabSize <= 0 || tok.VocabSize() == info.VocabSize {
		return nil
	}
	return fmt.Errorf("%w: vocabulary %s has %d entries but model %s's word-embedding table has %d rows",
		ErrVocabMismatch, tokPath, tok.VocabSize(), modelPath, info.VocabSize)
}

// EmbedderConfig says how NewEmbedder opens a model.
type EmbedderConfig struct {
	Kind      string  // engine backend: "cpu", "cuda", "auto" ("" = auto)
	Vocab     string  // tokenizer file or folder overriding the model's own; "" = the model's
	Options   Options // backend options
	BatchSize int     // rows per engine call; 0: DefaultBatchSize
}

// NewEmbedder loads the model's tokenizer, opens an engine for it and checks
// that the two agree (vocabulary size; the tokenizer truncates to the model's
// window). Close releases the engine.
func NewEmbedder(m *Model, c EmbedderConfig) (*Embedder, error) {
	vocab := c.Vocab
	if vocab == "" {
		vocab = m.Tokenizer
	}
	if vocab == "" {
		return nil, fmt.Errorf("model %s: no vocab.txt or tokenizer.json beside it; pass --vocab", m.Path)
	}
	tok, err := tokenizer.Load(vocab)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", vocab, err)
	}
	eng, err := Open(c.Kind, m, c.Options)
	if err != nil {
		return nil, err
	}
	info := eng.Info()
	modelFile := m.ONNX
	if modelFile == "" {
		modelFile = m.Path
	}
	if err := CheckVocab(tok, vocab, info, modelFile); err != nil {
		eng.Close()
		return nil, err
	}
	if info.MaxSeqLen > 0 && tok.MaxLength() > info.MaxSeqLen {
		tok = tok.WithMaxLength(info.MaxSeqLen)
	}
	return &Embedder{Tokenizer: tok, Engine: eng, BatchSize: c.BatchSize}, nil
}

// Close releases the engine.
func (e *Embedder) Close() error { return e.Engine.Close() }

// EmbedTexts returns one embedding per text, in the order given. Texts are
// sorted by token count and cut into batches of BatchSize, so that a padded
// engine pads each batch only to rows of similar length.
func (e *Embedder) EmbedTexts(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return [][]float32{}, nil
	}
	// All ids in one buffer; spans index into it.
	type span struct{ idx, start, end int }
	var ids []int32
	spans := make([]span, len(texts))
	for i, t := range texts {
		start := len(ids)
		ids, _ = e.Tokenizer.EncodeTo(ids, t)
		spans[i] = span{i, start, len(ids)}
	}
	sort.SliceStable(spans, func(a, b int) bool {
		return spans[a].end-spans[a].start < spans[b].end-spans[b].start
	})
	size := e.BatchSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	dim := e.Engine.Info().Dim
	backing := make([]float32, len(texts)*dim)
	out := make([][]float32, len(texts))
	batch := &Batch{}
	for lo := 0; lo < len(spans); lo += size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+size, len(spans))
		batch.Reset()
		for _, s := range spans[lo:hi] {
			batch.Append(ids[s.start:s.end])
		}
		vecs, err := e.Engine.Embed(ctx, batch)
		if err != nil {
			return nil, err
		}
		if len(vecs) != (hi-lo)*dim {
			return nil, fmt.Errorf("engine returned %d values for %d rows of %d", len(vecs), hi-lo, dim)
		}
		for j, s := range spans[lo:hi] {
			row := backing[s.idx*dim : (s.idx+1)*dim : (s.idx+1)*dim]
			copy(row, vecs[j*dim:(j+1)*dim])
			out[s.idx] = row
		}
	}
	return out, nil
}
