// Package engine turns tokenised sentences into sentence embeddings.
//
// Every inference backend (ONNX Runtime on CPU, the CUDA engine) sits behind
// the small Engine interface so that serve, bench and the CLI never know which
// one runs. Batches are flat and padding-free, as in text-embeddings-inference:
// the token ids of all rows end to end plus cumulative offsets. Padded backends
// pad at the edge; packed backends use the layout as is.
package engine

import (
	"context"
	"errors"
	"fmt"
)

// Batch is a padding-free batch of tokenised rows. Row i is
// IDs[Offsets[i]:Offsets[i+1]]; every row already carries [CLS] … [SEP].
// Token type ids are all zero for single-sentence embedding and so are not
// stored.
type Batch struct {
	IDs     []int32
	Offsets []int32 // len(Offsets) == Rows()+1, Offsets[0] == 0
	// Text asks a TextEmbedder's Submit to write the rows' JSON text as
	// well, for AwaitText (EmbedText sets it itself); other engines and
	// calls ignore it.
	Text bool
	// TextOnly, with Text, says the caller reads only the text of a row
	// that comes back with text, so that a TextEmbedder's EmbedText may
	// leave those rows' floats unwritten (the GPU's copy of them and two
	// host copies a batch, on the serving cycle's critical path).
	TextOnly bool
}

// NewBatch packs rows into a Batch, copying their ids.
func NewBatch(rows [][]int32) *Batch {
	n := 0
	for _, r := range rows {
		n += len(r)
	}
	b := &Batch{IDs: make([]int32, 0, n), Offsets: make([]int32, 1, len(rows)+1)}
	for _, r := range rows {
		b.Append(r)
	}
	return b
}

// Append adds one row to the batch.
func (b *Batch) Append(ids []int32) {
	if len(b.Offsets) == 0 {
		b.Offsets = append(b.Offsets, 0)
	}
	b.IDs = append(b.IDs, ids...)
	b.Offsets = append(b.Offsets, int32(len(b.IDs)))
}

// Reset empties the batch, keeping its storage.
func (b *Batch) Reset() {
	b.IDs = b.IDs[:0]
	b.Offsets = append(b.Offsets[:0], 0)
}

// Rows is the number of sentences in the batch.
func (b *Batch) Rows() int {
	if len(b.Offsets) == 0 {
		return 0
	}
	return len(b.Offsets) - 1
}

// Row returns the token ids of row i (not a copy).
func (b *Batch) Row(i int) []int32 { return b.IDs[b.Offsets[i]:b.Offsets[i+1]] }

// Tokens is the total number of tokens, the work a padding-free engine does.
func (b *Batch) Tokens() int { return len(b.IDs) }

// MaxLen is the longest row, the width a padded engine pads to.
func (b *Batch) MaxLen() int {
	m := 0
	for i := 0; i < b.Rows(); i++ {
		if l := int(b.Offsets[i+1] - b.Offsets[i]); l > m {
			m = l
		}
	}
	return m
}

// Validate checks the batch's structure against an engine's limits.
func (b *Batch) Validate(maxSeqLen, vocabSize int) error {
	if len(b.Offsets) == 0 || b.Offsets[0] != 0 || int(b.Offsets[len(b.Offsets)-1]) != len(b.IDs) {
		return errors.New("batch offsets do not cover the ids")
	}
	for i := 0; i < b.Rows(); i++ {
		l := int(b.Offsets[i+1] - b.Offsets[i])
		if l <= 0 {
			return fmt.Errorf("batch row %d is empty", i)
		}
		if maxSeqLen > 0 && l > maxSeqLen {
			return fmt.Errorf("batch row %d has %d tokens, more than the model's %d", i, l, maxSeqLen)
		}
	}
	if vocabSize > 0 {
		for _, id := range b.IDs {
			if id < 0 || int(id) >= vocabSize {
				return fmt.Errorf("token id %d outside the vocabulary of %d", id, vocabSize)
			}
		}
	}
	return nil
}

// Info describes a loaded engine to its callers.
type Info struct {
	Backend   string  // "onnxruntime", "cuda", ...
	Dim       int     // embedding width (768 for m3e-base)
	MaxSeqLen int     // longest row the model takes (its position table)
	VocabSize int     // rows of the word-embedding table; 0 when unknown
	Pooling   Pooling // how token states become one vector
	// Pooled is true when the model's own graph pools (an ONNX whose output
	// is already embeddings [batch, hidden]); the engine then applies no
	// pooling or normalisation of its own and Pooling is not used.
	Pooled bool
}

// Engine is "token batches in, sentence embeddings out". Implementations are
// safe for use by one goroutine at a time; serve runs one Engine per model
// instance and never shares it across goroutines concurrently.
type Engine interface {
	// Info reports the engine's shape and pooling.
	Info() Info
	// Embed returns b.Rows()*Info().Dim float32s, row-major, pooled and
	// (when Pooling.Normalize) L2-normalised. The slice is owned by the caller.
	Embed(ctx context.Context, b *Batch) ([]float32, error)
	// Close frees the engine's native resources.
	Close() error
}

// IntoEmbedder is an Engine that can write into the caller's buffer, so a
// caller reusing one buffer per instance allocates nothing per batch (the
// CUDA engine; at 60k texts/s the per-batch result slices were ~180 MB/s of
// garbage).
type IntoEmbedder interface {
	// EmbedInto is Embed writing into dst, which holds at least
	// b.Rows()*Info().Dim floats; it returns dst[:b.Rows()*Dim].
	EmbedInto(ctx context.Context, b *Batch, dst []float32) ([]float32, error)
}

// ColdCounter is implemented by an engine whose first batches of a shape
// cost more than the ones after (kernels compiled, GEMMs timed, graphs
// captured): ColdRuns counts the batches that have so far, so that a
// caller measuring batch times (the scheduler's continuous policy) can
// leave those out.
type ColdCounter interface {
	ColdRuns() uint64
}

// Ticket names a batch submitted to a Pipeliner, for its Nearly and Await.
type Ticket struct {
	Slot int // the engine's buffer slot; -1 for an empty batch
	Rows int
}

// Pipeliner is an Engine that overlaps batches on one instance (the CUDA
// engine): while the GPU computes one batch, the next is tokenised, staged
// into pinned memory and queued behind it, so that a serving cycle costs the
// GPU time plus little of the host's instead of their sum. Two batches may
// be in flight. Submit is called from one goroutine and Nearly/Await from
// one other, in submission order; Embed must not be mixed in while batches
// are in flight. The synchronous Engine interface stays what other backends
// (ONNX Runtime) implement.
type Pipeliner interface {
	// Pipelined says whether the engine wants its batches overlapped now
	// (a switch for comparison runs).
	Pipelined() bool
	// Submit stages b and queues its run; it returns without waiting for
	// the GPU. b may be reused once it returns.
	Submit(ctx context.Context, b *Batch) (Ticket, error)
	// Nearly returns once t's batch is close to done: the moment to cut
	// and submit the next one.
	Nearly(t Ticket) error
	// Await waits for t's batch and writes its t.Rows*Dim floats into dst
	// (allocated when too short), returning dst[:t.Rows*Dim].
	Await(t Ticket, dst []float32) ([]float32, error)
}
