package convert

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// anonymize renames every initializer to w0, w1, ... as exporters that
// drop module names do, so detection must rely on the graph alone.
func anonymize(m *onnxpb.ModelProto) {
	g := m.GetGraph()
	rename := map[string]string{}
	for i, t := range g.GetInitializer() {
		rename[t.GetName()] = fmt.Sprintf("w%d", i)
		t.Name = rename[t.GetName()]
	}
	for _, n := range g.GetNode() {
		for i, in := range n.GetInput() {
			if r, ok := rename[in]; ok {
				n.Input[i] = r
			}
		}
	}
}

func TestDetectBERTWithoutNames(t *testing.T) {
	want := Architecture{Type: "bert", Layers: 2, Hidden: 64, Heads: 4, Intermediate: 128, VocabSize: 21128, MaxPositions: 512}
	for _, model := range []string{"model.onnx", "dynamo/model.onnx"} {
		t.Run(model, func(t *testing.T) {
			path := filepath.Join(fixtures, model)
			m, err := ReadModel(path)
			if err != nil {
				t.Fatal(err)
			}
			anonymize(m)
			r, err := inspectModel(m, path)
			if err != nil {
				t.Fatal(err)
			}
			if r.Architecture == nil || *r.Architecture != want {
				t.Errorf("architecture = %+v, want %+v", r.Architecture, want)
			}
		})
	}
}

// fusedBERT builds the graph ONNX Runtime's transformer optimiser makes of
// a BERT: EmbedLayerNormalization, then per layer a fused Attention with
// num_heads, SkipLayerNormalization and the feed-forward MatMuls. Weights
// carry dims and no data, which is all Inspect reads.
func fusedBERT(layers, hidden, heads, inter, vocab, positions int64) *onnxpb.ModelProto {
	f := int32(onnxpb.TensorProto_FLOAT)
	g := &onnxpb.GraphProto{}
	w := func(name string, dims ...int64) string {
		g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: name, Dims: dims, DataType: f})
		return name
	}
	node := func(op string, out string, attrs []*onnxpb.AttributeProto, in ...string) string {
		g.Node = append(g.Node, &onnxpb.NodeProto{OpType: op, Domain: "com.microsoft", Input: in, Output: []string{out}, Attribute: attrs})
		return out
	}
	x := node("EmbedLayerNormalization", "emb", nil, "input_ids", "", w("t0", vocab, hidden), w("t1", positions, hidden), w("t2", 2, hidden), w("t3", hidden), w("t4", hidden), "attention_mask")
	for l := int64(0); l < layers; l++ {
		p := func(s string) string { return fmt.Sprintf("l%d_%s", l, s) }
		a := node("Attention", p("att"), []*onnxpb.AttributeProto{{Name: "num_heads", Type: onnxpb.AttributeProto_INT, I: heads}},
			x, w(p("qkv_w"), hidden, 3*hidden), w(p("qkv_b"), 3*hidden), "attention_mask")
		a = node("MatMul", p("ao"), nil, a, w(p("o_w"), hidden, hidden))
		x = node("SkipLayerNormalization", p("ln1"), nil, a, x, w(p("ln1_g"), hidden), w(p("ln1_b"), hidden), w(p("o_b"), hidden))
		h := node("MatMul", p("ff1"), nil, x, w(p("ff1_w"), hidden, inter))
		h = node("BiasGelu", p("gelu"), nil, h, w(p("ff1_b"), inter))
		h = node("MatMul", p("ff2"), nil, h, w(p("ff2_w"), inter, hidden))
		x = node("SkipLayerNormalization", p("ln2"), nil, h, x, w(p("ln2_g"), hidden), w(p("ln2_b"), hidden), w(p("ff2_b"), hidden))
	}
	dyn := func(name string, elem int32, extra ...int64) *onnxpb.ValueInfoProto {
		dims := []*onnxpb.TensorShapeProto_Dimension{
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}},
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "seq"}},
		}
		for _, e := range extra {
			dims = append(dims, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: e}})
		}
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: elem, Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
	}
	g.Input = []*onnxpb.ValueInfoProto{dyn("input_ids", 6), dyn("attention_mask", 6)}
	g.Output = []*onnxpb.ValueInfoProto{dyn(x, f, hidden)}
	return &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}, {Domain: "com.microsoft", Version: 1}}, Graph: g}
}

func TestDetectBERTFusedGraph(t *testing.T) {
	// m3e-base's shape: BERT-base with bert-base-chinese's vocabulary.
	m := fusedBERT(12, 768, 12, 3072, 21128, 512)
	r, err := inspectModel(m, "m3e-base-fused.onnx")
	if err != nil {
		t.Fatal(err)
	}
	want := Architecture{Type: "bert", Layers: 12, Hidden: 768, Heads: 12, Intermediate: 3072, VocabSize: 21128, MaxPositions: 512}
	if r.Architecture == nil || *r.Architecture != want {
		t.Errorf("architecture = %+v, want %+v", r.Architecture, want)
	}
	// BertModel without its pooler: embeddings + 12 encoder layers.
	const emb = (21128+512+2)*768 + 2*768
	const layer = 768*3*768 + 3*768 + 768*768 + 768 + 2*768 + 768*3072 + 3072 + 3072*768 + 768 + 2*768
	if r.Parameters != emb+12*layer || r.ParameterBytes != 4*r.Parameters {
		t.Errorf("parameters = %d (%d bytes), want %d", r.Parameters, r.ParameterBytes, emb+12*layer)
	}
	if r.Ops["com.microsoft.Attention"] != 12 || r.Opset != 17 {
		t.Errorf("ops = %v, opset %d", r.Ops, r.Opset)
	}
	if r.Inputs[0].DType != "int32" || r.SuggestedProfile == nil || r.SuggestedProfile.Max["input_ids"][1] != 512 {
		t.Errorf("inputs %+v, profile %+v", r.Inputs, r.SuggestedProfile)
	}
}

func TestDetectNotBERT(t *testing.T) {
	g := &onnxpb.GraphProto{
		Initializer: []*onnxpb.TensorProto{{Name: "w", Dims: []int64{3, 3}, DataType: 1}},
		Node:        []*onnxpb.NodeProto{{OpType: "MatMul", Input: []string{"x", "w"}, Output: []string{"y"}}},
	}
	r, err := inspectModel(&onnxpb.ModelProto{IrVersion: 8, Graph: g}, "mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if r.Architecture != nil {
		t.Errorf("an MLP was taken for %+v", r.Architecture)
	}
}

// BenchmarkInspectM3EBaseSized inspects an m3e-base-shaped model (12
// layers, 768 wide, 407 MB of weights inside the .onnx file, as a fused
// ONNX Runtime graph): B/op stays at the graph's size, showing that the
// weights are skipped rather than read. Writing the model takes a few
// seconds and 407 MB of temporary disk; -short skips it.
func BenchmarkInspectM3EBaseSized(b *testing.B) {
	if testing.Short() {
		b.Skip("writes a 407 MB model")
	}
	m := fusedBERT(12, 768, 12, 3072, 21128, 512)
	for _, t := range m.GetGraph().GetInitializer() {
		n, _ := numElements(t.GetDims())
		t.RawData = make([]byte, 4*n)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	m = nil
	path := filepath.Join(b.TempDir(), "model.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	fileMB := float64(len(data)) / 1e6
	data = nil
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Inspect(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(fileMB, "file-MB")
}
