package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/m3ectl/m3ectl/pkg/floatfmt"
)

// StreamChunk is how many texts EmbedStream embeds before writing their
// lines: large enough for full batches, small enough that a pipe sees output
// soon and memory stays flat on long inputs.
const StreamChunk = 256

// Progress is called after each chunk with the texts done so far.
type Progress func(done int, elapsed time.Duration)

// EmbedStream embeds texts as they are read and writes one JSON line per text,
// in input order: {"index": i, "embedding": [...]}. Floats are written in
// their shortest form that reads back as the same float32.
func (e *Embedder) EmbedStream(ctx context.Context, in *TextScanner, w io.Writer, progress Progress) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	start := time.Now()
	done := 0
	texts := make([]string, 0, StreamChunk)
	var line []byte
	flush := func() error {
		if len(texts) == 0 {
			return nil
		}
		vecs, err := e.EmbedTexts(ctx, texts)
		if err != nil {
			return err
		}
		for _, v := range vecs {
			if line, err = appendLine(line[:0], done, v); err != nil {
				return err
			}
			if _, err := bw.Write(line); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			done++
		}
		texts = texts[:0]
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		if progress != nil {
			progress(done, time.Since(start))
		}
		return nil
	}
	for in.Scan() {
		texts = append(texts, in.Text())
		if len(texts) == StreamChunk {
			if err := flush(); err != nil {
				return done, err
			}
		}
	}
	if err := in.Err(); err != nil {
		// Texts read before the bad line are still embedded and written, so
		// the output lines up with the input up to the error.
		if ferr := flush(); ferr != nil {
			return done, ferr
		}
		return done, err
	}
	return done, flush()
}

// EmbedAll embeds a fixed list of texts and writes them like EmbedStream.
func (e *Embedder) EmbedAll(ctx context.Context, texts []string, w io.Writer) error {
	vecs, err := e.EmbedTexts(ctx, texts)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for i, v := range vecs {
		if line, err = appendLine(line[:0], i, v); err != nil {
			return err
		}
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// appendLine is AppendEmbeddingJSON for finite vectors; JSON has no NaN or
// Inf, and a model that yields them is broken, which the user must hear.
func appendLine(b []byte, index int, v []float32) ([]byte, error) {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return b, fmt.Errorf("input %d: the model produced a non-finite embedding (NaN or Inf)", index)
		}
	}
	return AppendEmbeddingJSON(b, index, v), nil
}

// AppendEmbeddingJSON appends {"index":i,"embedding":[...]} and a newline.
// It is hand-written because encoding/json formats float32 through float64
// and reflection, several times slower on 768-wide vectors.
func AppendEmbeddingJSON(b []byte, index int, v []float32) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, `,"embedding":[`...)
	for k, x := range v {
		if k > 0 {
			b = append(b, ',')
		}
		b = floatfmt.AppendFloat32(b, x)
	}
	return append(b, "]}\n"...)
}
