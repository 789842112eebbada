package onnxrt

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// Test graphs are made from the fixture with the generated ONNX types rather
// than stored, so testdata holds no second copy of the weights.

func tensorType(elem onnxpb.TensorProto_DataType, dims ...string) *onnxpb.TypeProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{
			Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
	}
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(elem), Shape: shape}}}
}

func castNode(in, out string, to onnxpb.TensorProto_DataType) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Input: []string{in}, Output: []string{out}, OpType: "Cast", Name: "cast_" + in,
		Attribute: []*onnxpb.AttributeProto{{Name: "to", Type: onnxpb.AttributeProto_INT, I: int64(to)}}}
}

func writeModel(t *testing.T, m *onnxpb.ModelProto, name string) string {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// int32Variant rewrites the fixture to take int32 input_ids and
// attention_mask (cast to int64 inside) plus a token_type_ids input, as some
// exporters produce. Its embeddings must equal the original's.
func int32Variant(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(fixture("m3e-tiny", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	var casts []*onnxpb.NodeProto
	for _, in := range g.Input {
		wide := in.Name + "_int64"
		for _, n := range g.Node {
			for k, x := range n.Input {
				if x == in.Name {
					n.Input[k] = wide
				}
			}
		}
		casts = append(casts, castNode(in.Name, wide, onnxpb.TensorProto_INT64))
		in.Type = tensorType(onnxpb.TensorProto_INT32, "batch", "seq")
	}
	// token_type_ids: fed zeros; consumed by a Cast whose result is unused.
	g.Input = append(g.Input, &onnxpb.ValueInfoProto{Name: "token_type_ids", Type: tensorType(onnxpb.TensorProto_INT32, "batch", "seq")})
	g.Node = append(casts, g.Node...)
	return writeModel(t, m, "int32.onnx")
}

// notEncoder is a valid ONNX graph with token-id inputs whose only output is
// 2-D: [batch, seq] floats.
func notEncoder(t *testing.T) string {
	t.Helper()
	m := &onnxpb.ModelProto{
		IrVersion:   7,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}},
		Graph: &onnxpb.GraphProto{
			Name:   "not_encoder",
			Node:   []*onnxpb.NodeProto{castNode("input_ids", "scores", onnxpb.TensorProto_FLOAT)},
			Input:  []*onnxpb.ValueInfoProto{{Name: "input_ids", Type: tensorType(onnxpb.TensorProto_INT64, "batch", "seq")}},
			Output: []*onnxpb.ValueInfoProto{{Name: "scores", Type: tensorType(onnxpb.TensorProto_FLOAT, "batch", "seq")}},
		},
	}
	return writeModel(t, m, "not-encoder.onnx")
}
