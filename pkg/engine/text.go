package engine

import "context"

// Text is a batch's embeddings as JSON text, one row after the other: row
// i's numbers are Buf[Ends[i-1]:Ends[i]] (from 0 for row 0), written as
// floatfmt.AppendFloat32s(nil, row, ',', "null") writes them, byte for
// byte, without the brackets.
//
// A JSON answer of m3e-base is 768 numbers a text, and formatting them was
// the largest part of the server's CPU per request (a quarter to a third
// on the H200 at 64k requests/s): an engine on a GPU writes them there, in
// microseconds for a whole batch, and the server copies bytes.
type Text struct {
	Buf  []byte
	Ends []int
}

// Reset empties t, keeping its storage.
func (t *Text) Reset() {
	t.Buf = t.Buf[:0]
	t.Ends = t.Ends[:0]
}

// Rows is the number of rows t holds.
func (t *Text) Rows() int { return len(t.Ends) }

// Row is row i's text (not a copy).
func (t *Text) Row(i int) []byte {
	start := 0
	if i > 0 {
		start = t.Ends[i-1]
	}
	return t.Buf[start:t.Ends[i]]
}

// Append adds one row's text.
func (t *Text) Append(row []byte) {
	t.Buf = append(t.Buf, row...)
	t.Ends = append(t.Ends, len(t.Buf))
}

// TextEmbedder is an engine that can also write its results as JSON text
// (the CUDA engine). Text is asked for per batch because it costs the
// device time and transfer a binary or gRPC answer does not need.
type TextEmbedder interface {
	// EmbedText is IntoEmbedder's EmbedInto that also resets txt and fills
	// it with the batch's rows as Text. txt is left empty when the engine
	// writes no text after all (switched off, or a width it does not
	// format); the caller then formats the floats itself.
	EmbedText(ctx context.Context, b *Batch, dst []float32, txt *Text) ([]float32, error)
}

// TextPipeliner is a Pipeliner that writes text too (the CUDA engine).
type TextPipeliner interface {
	// AwaitText is Pipeliner's Await for a batch submitted with
	// Batch.Text set, filling txt as EmbedText does.
	AwaitText(t Ticket, dst []float32, txt *Text) ([]float32, error)
}
