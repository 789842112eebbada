package onnxrt

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

// bertShape is a BERT encoder's size. m3eBase is m3e-base's.
type bertShape struct {
	layers, hidden, heads, inter, vocab, positions int
	symbolicHidden                                 bool // declare the output's last dim as a name, as some exporters do
}

var m3eBase = bertShape{layers: 12, hidden: 768, heads: 12, inter: 3072, vocab: 21128, positions: 512}

// graphBuilder accumulates nodes and initializers of one ONNX graph.
type graphBuilder struct {
	g   *onnxpb.GraphProto
	rng *rand.Rand
	n   int
}

func (b *graphBuilder) name(prefix string) string {
	b.n++
	return fmt.Sprintf("%s_%d", prefix, b.n)
}

func (b *graphBuilder) init(name string, dims []int64, data []float32) string {
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), len(data)*4)
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: append([]byte(nil), raw...)})
	return name
}

func (b *graphBuilder) initInt64(name string, vals ...int64) string {
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name: name, Dims: []int64{int64(len(vals))}, DataType: int32(onnxpb.TensorProto_INT64), Int64Data: vals})
	return name
}

func (b *graphBuilder) scalar(v float32) string {
	n := b.name("const")
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name: n, DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: []float32{v}})
	return n
}

// weight is a random normal(0, 0.02) matrix, BERT's initialisation.
func (b *graphBuilder) weight(prefix string, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(b.rng.NormFloat64() * 0.02)
	}
	return b.init(b.name(prefix), dims, data)
}

func (b *graphBuilder) constant(prefix string, v float32, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = v
	}
	return b.init(b.name(prefix), dims, data)
}

func (b *graphBuilder) op(typ string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.name(typ)
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{OpType: typ, Name: out, Input: inputs, Output: []string{out}, Attribute: attrs})
	return out
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func (b *graphBuilder) layerNorm(x string, hidden int64) string {
	return b.op("LayerNormalization", []string{x, b.constant("ln_scale", 1, hidden), b.constant("ln_bias", 0, hidden)},
		&onnxpb.AttributeProto{Name: "epsilon", Type: onnxpb.AttributeProto_FLOAT, F: 1e-12}, intAttr("axis", -1))
}

func (b *graphBuilder) linear(x string, in, out int64) string {
	return b.op("Add", []string{b.op("MatMul", []string{x, b.weight("w", in, out)}), b.weight("b", out)})
}

// writeBERT writes an ONNX BERT encoder of the given shape with random
// weights, in the graph form PyTorch's exporter produces (unfused MatMul /
// Softmax attention, Erf GELU, LayerNormalization, opset 17): inputs
// input_ids and attention_mask [batch, seq] int64, output last_hidden_state
// [batch, seq, hidden]. m3e-base's size makes a ~440 MB file; it exists so
// benchmarks can measure the real model's cost without downloading it.
func writeBERT(tb testing.TB, s bertShape, dir string) string {
	tb.Helper()
	H, heads, dh := int64(s.hidden), int64(s.heads), int64(s.hidden/s.heads)
	b := &graphBuilder{g: &onnxpb.GraphProto{Name: "bert"}, rng: rand.New(rand.NewPCG(1, 2))}
	b.g.Input = []*onnxpb.ValueInfoProto{
		{Name: "input_ids", Type: tensorType(onnxpb.TensorProto_INT64, "batch_size", "max_seq_len")},
		{Name: "attention_mask", Type: tensorType(onnxpb.TensorProto_INT64, "batch_size", "max_seq_len")},
	}
	// Embeddings: word + position (0..seq-1) + token type 0, then LayerNorm.
	word := b.op("Gather", []string{b.weight("word_embeddings", int64(s.vocab), H), "input_ids"})
	seqLen := b.op("Gather", []string{b.op("Shape", []string{"input_ids"}), b.initInt64("one", 1)})
	zero := b.initInt64("zero", 0)
	positions := b.op("Range", []string{b.op("Squeeze", []string{zero}), b.op("Squeeze", []string{seqLen}), b.op("Squeeze", []string{b.initInt64("step", 1)})})
	pos := b.op("Gather", []string{b.weight("position_embeddings", int64(s.positions), H), positions})
	x := b.op("Add", []string{b.op("Add", []string{word, pos}), b.weight("token_type_row", H)})
	x = b.layerNorm(x, H)
	// Additive mask [batch, 1, 1, seq]: 0 for tokens, -10000 for padding.
	maskF := b.op("Cast", []string{"attention_mask"}, intAttr("to", int64(onnxpb.TensorProto_FLOAT)))
	bias := b.op("Mul", []string{b.op("Sub", []string{b.scalar(1), maskF}), b.scalar(-10000)})
	bias = b.op("Unsqueeze", []string{bias, b.initInt64("mask_axes", 1, 2)})
	headShape := b.initInt64("head_shape", 0, 0, heads, dh)
	mergeShape := b.initInt64("merge_shape", 0, 0, H)
	for l := 0; l < s.layers; l++ {
		split := func(t string, perm ...int64) string {
			return b.op("Transpose", []string{b.op("Reshape", []string{t, headShape})}, intsAttr("perm", perm...))
		}
		q := split(b.linear(x, H, H), 0, 2, 1, 3)
		k := split(b.linear(x, H, H), 0, 2, 3, 1)
		v := split(b.linear(x, H, H), 0, 2, 1, 3)
		scores := b.op("Add", []string{b.op("Mul", []string{b.op("MatMul", []string{q, k}), b.scalar(float32(1 / math.Sqrt(float64(dh))))}), bias})
		probs := b.op("Softmax", []string{scores}, intAttr("axis", -1))
		ctx := b.op("Transpose", []string{b.op("MatMul", []string{probs, v})}, intsAttr("perm", 0, 2, 1, 3))
		ctx = b.op("Reshape", []string{ctx, mergeShape})
		x = b.layerNorm(b.op("Add", []string{b.linear(ctx, H, H), x}), H)
		h := b.linear(x, H, int64(s.inter))
		gelu := b.op("Mul", []string{b.op("Mul", []string{h, b.scalar(0.5)}),
			b.op("Add", []string{b.op("Erf", []string{b.op("Div", []string{h, b.scalar(float32(math.Sqrt2))})}), b.scalar(1)})})
		x = b.layerNorm(b.op("Add", []string{b.linear(gelu, int64(s.inter), H), x}), H)
	}
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{OpType: "Identity", Name: "out", Input: []string{x}, Output: []string{"last_hidden_state"}})
	b.g.Output = []*onnxpb.ValueInfoProto{{Name: "last_hidden_state", Type: tensorType(onnxpb.TensorProto_FLOAT, "batch_size", "max_seq_len", fmt.Sprint(H))}}
	if !s.symbolicHidden {
		b.g.Output[0].GetType().GetTensorType().Shape.Dim[2].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: H}
	}
	m := &onnxpb.ModelProto{IrVersion: 8, ProducerName: "m3ectl-test", OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: b.g}
	data, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestGeneratedBERTBatchesMatchSingles checks, on a graph built here rather
// than exported, that padding never leaks into a row: each row embedded in a
// mixed-length batch equals the row embedded alone.
func TestGeneratedBERTBatchesMatchSingles(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	// A symbolic output width also makes the engine learn it from a probe run.
	writeBERT(t, bertShape{layers: 2, hidden: 32, heads: 4, inter: 64, vocab: 21128, positions: 512, symbolicHidden: true}, dir)
	e := openFixture(t, filepath.Join(dir, "model.onnx"), engine.Options{Threads: 1})
	if info := e.Info(); info.Dim != 32 || info.VocabSize != 21128 {
		t.Fatalf("info = %+v", info)
	}
	rows := [][]int32{{101, 6983, 2421, 102}, {101, 102}, {101, 800, 801, 802, 803, 804, 805, 102}}
	batch, err := e.Embed(context.Background(), engine.NewBatch(rows))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		one, err := e.Embed(context.Background(), engine.NewBatch([][]int32{r}))
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(one, batch[i*32:(i+1)*32]); d > tolerance {
			t.Errorf("row %d: batch vs alone max |Δ| = %g", i, d)
		}
	}
}

// BenchmarkEmbedBaseShaped measures an m3e-base-shaped model (random
// weights; 12 layers, 768 wide) with short Chinese sentences: the product's
// ONNX Runtime CPU reference point. The ~440 MB model is generated into a
// temporary folder first (a few seconds, not timed).
func BenchmarkEmbedBaseShaped(b *testing.B) {
	needORT(b)
	dir := b.TempDir()
	writeBERT(b, m3eBase, dir)
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), mustRead(b, fixture("m3e-tiny", "vocab.txt")), 0o644); err != nil {
		b.Fatal(err)
	}
	m, err := engine.ResolveModel(filepath.Join(dir, "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bs := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d/threads=%d", bs, runtime.NumCPU()), func(b *testing.B) {
			emb, err := engine.NewEmbedder(m, engine.EmbedderConfig{Kind: "cpu", BatchSize: bs})
			if err != nil {
				b.Fatal(err)
			}
			defer emb.Close()
			texts := shortChinese(bs)
			sentences := 0
			for b.Loop() {
				if _, err := emb.EmbedTexts(context.Background(), texts); err != nil {
					b.Fatal(err)
				}
				sentences += len(texts)
			}
			b.ReportMetric(float64(sentences)/b.Elapsed().Seconds(), "sentences/s")
		})
	}
}

func mustRead(tb testing.TB, p string) []byte {
	tb.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}
