package engine

import "context"

// Text is a batch's embeddings as JSON text: Rows[i] is row i's numbers
// as floatfmt.AppendFloat32s(nil, row, ',', "null") writes them, byte for
// byte, without the brackets.
//
// A JSON answer of m3e-base is 768 numbers a text, and formatting them was
// the largest part of the server's CPU per request (a quarter to a third
// on the H200 at 64k requests/s): an engine on a GPU writes them there, in
// microseconds for a whole batch, and the server copies bytes.
type Text struct {
	Rows [][]byte
	// Release, when set, gives the memory Rows point into back to the
	// engine: the holder calls it once, after the last read of Rows.
	Release func()
}

// Reset empties t, keeping its storage; a Release not called is dropped.
func (t *Text) Reset() {
	clear(t.Rows)
	t.Rows = t.Rows[:0]
	t.Release = nil
}

// TextEmbedder is an engine that can also write its results as JSON text
// (the CUDA engine). Text is asked for per batch because it costs the
// device time and transfer a binary or gRPC answer does not need.
type TextEmbedder interface {
	// EmbedText is IntoEmbedder's EmbedInto that also resets txt and fills
	// it with the batch's rows as Text. txt is left empty when the engine
	// writes no text after all (switched off, a width it does not format,
	// its text memory all in use); the caller then formats the floats.
	EmbedText(ctx context.Context, b *Batch, dst []float32, txt *Text) ([]float32, error)
}

// TextPipeliner is a Pipeliner that writes text too (the CUDA engine).
type TextPipeliner interface {
	// AwaitText is Pipeliner's Await for a batch submitted with
	// Batch.Text set, filling txt as EmbedText does.
	AwaitText(t Ticket, dst []float32, txt *Text) ([]float32, error)
}
