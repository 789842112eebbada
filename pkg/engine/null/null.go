// Package null is an engine that computes nothing: it answers every row
// with one of a fixed set of unit vectors of the model's width, picked by a
// hash of the row's token ids. It exists to measure the server's own cost
// per request (HTTP, decoding, tokenising, batching, encoding) with the
// engine's share taken out: `m3ectl serve --engine null` on a model folder
// of the shape under test (its config.json's hidden_size, or its pooling
// config's width) serves exactly what a real model of that width would,
// byte for byte in layout and digit count, only not its values. It is
// registered as backend "null", left out of the flag's help, and logs a
// warning when opened, so that nobody mistakes its output for embeddings.
package null

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/floatfmt"
)

// Backend is the name the engine registers under.
const Backend = "null"

func init() { engine.RegisterBackend(Backend, Open, nil) }

// vectors is how many distinct unit vectors the engine hands out: enough
// that a response's digits vary as a real model's do, few enough to stay
// in cache.
const vectors = 64

// Engine is the null engine. Like every engine.Engine it is used by one
// goroutine at a time.
type Engine struct {
	info  engine.Info
	table []float32 // vectors × Dim, each row L2-normalised
	// text is each vector's JSON text, handed over by EmbedText as the
	// CUDA engine hands over the text its GPU wrote, so that the server's
	// cost is measured on the path it takes there; nil with
	// M3ECTL_NULL_TEXT=0 (the path of an engine that writes none, ONNX
	// Runtime's).
	text [][]byte
}

var (
	_ engine.Engine       = (*Engine)(nil)
	_ engine.IntoEmbedder = (*Engine)(nil)
	_ engine.TextEmbedder = (*Engine)(nil)
)

// Open reads the model's width (and, from config.json, its window and
// vocabulary, so that the server checks requests as it would for the real
// model) and reads no weights.
func Open(m *engine.Model, o engine.Options) (engine.Engine, error) {
	info := engine.Info{Backend: Backend, Dim: m.Dim, Pooling: m.Pooling}
	if m.HFConfig != "" {
		c, err := engine.ReadHFConfig(m.HFConfig)
		if err != nil {
			return nil, err
		}
		if info.Dim == 0 {
			info.Dim = c.HiddenSize
		}
		info.MaxSeqLen, info.VocabSize = c.MaxPositionEmbeddings, c.VocabSize
	}
	if info.Dim <= 0 {
		return nil, fmt.Errorf("model %s: the null engine needs the embedding width (config.json hidden_size or the pooling config)", m.Path)
	}
	slog.Warn("engine null: embeddings are NOT computed (a fixed vector per token hash); for measuring the server's own cost only", "model", m.Path, "dim", info.Dim)
	rng := rand.New(rand.NewPCG(1, 2))
	table := make([]float32, vectors*info.Dim)
	for v := 0; v < vectors; v++ {
		row := table[v*info.Dim : (v+1)*info.Dim]
		var sum float64
		for i := range row {
			x := rng.NormFloat64()
			row[i] = float32(x)
			sum += x * x
		}
		inv := 1 / math.Sqrt(sum)
		for i := range row {
			row[i] = float32(float64(row[i]) * inv)
		}
	}
	e := &Engine{info: info, table: table}
	if os.Getenv("M3ECTL_NULL_TEXT") != "0" {
		for v := 0; v < vectors; v++ {
			e.text = append(e.text, floatfmt.AppendFloat32s(nil, table[v*info.Dim:(v+1)*info.Dim], ',', "null"))
		}
	}
	return e, nil
}

// Info reports the model's width and pooling; Backend is "null".
func (e *Engine) Info() engine.Info { return e.info }

// Embed returns a fresh slice of b.Rows() vectors.
func (e *Engine) Embed(ctx context.Context, b *engine.Batch) ([]float32, error) {
	return e.EmbedInto(ctx, b, make([]float32, b.Rows()*e.info.Dim))
}

// EmbedInto copies each row's vector into dst.
func (e *Engine) EmbedInto(ctx context.Context, b *engine.Batch, dst []float32) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.Validate(e.info.MaxSeqLen, e.info.VocabSize); err != nil {
		return nil, err
	}
	d := e.info.Dim
	dst = dst[:b.Rows()*d]
	for r := 0; r < b.Rows(); r++ {
		v := vectorOf(b.Row(r))
		copy(dst[r*d:(r+1)*d], e.table[v*d:(v+1)*d])
	}
	return dst, nil
}

// vectorOf picks a row's vector by an FNV-1a hash of its ids.
func vectorOf(ids []int32) int {
	h := uint32(2166136261)
	for _, id := range ids {
		h = (h ^ uint32(id)) * 16777619
	}
	return int(h % vectors)
}

// EmbedText is EmbedInto that also hands over the vectors' JSON text
// (engine.TextEmbedder); txt stays empty with M3ECTL_NULL_TEXT=0.
func (e *Engine) EmbedText(ctx context.Context, b *engine.Batch, dst []float32, txt *engine.Text) ([]float32, error) {
	txt.Reset()
	dst, err := e.EmbedInto(ctx, b, dst)
	if err != nil || e.text == nil {
		return dst, err
	}
	for r := 0; r < b.Rows(); r++ {
		txt.Rows = append(txt.Rows, e.text[vectorOf(b.Row(r))])
	}
	return dst, nil
}

// Close frees nothing.
func (e *Engine) Close() error { return nil }
