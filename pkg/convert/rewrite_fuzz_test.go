package convert

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

// smallEncoder is a two-node "encoder" (Gather of a table, then Softmax):
// a cheap seed that reaches every rewrite.
func smallEncoder() []byte {
	table := &onnxpb.TensorProto{Name: "table", Dims: []int64{8, 4}, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: make([]byte, 8*4*4)}
	g := &onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{
			tensorValue("input_ids", onnxpb.TensorProto_INT64, Dim{Param: "b"}, Dim{Param: "s"}),
			tensorValue("attention_mask", onnxpb.TensorProto_INT64, Dim{Param: "b"}, Dim{Param: "s"}),
		},
		Output:      []*onnxpb.ValueInfoProto{tensorValue("last_hidden_state", onnxpb.TensorProto_FLOAT, Dim{Param: "b"}, Dim{Param: "s"}, Dim{Value: 4})},
		Initializer: []*onnxpb.TensorProto{table},
		Node: []*onnxpb.NodeProto{
			{OpType: "Gather", Name: "g", Input: []string{"table", "input_ids"}, Output: []string{"x"}},
			{OpType: "Softmax", Name: "s", Input: []string{"x"}, Output: []string{"last_hidden_state"}},
		},
	}
	b, _ := proto.Marshal(&onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: g})
	return b
}

// FuzzRewrite: LoadModel, the pooling head and the fp16 AutoCast never
// panic on a graph they are handed, whatever it holds; they return errors.
func FuzzRewrite(f *testing.F) {
	f.Add(smallEncoder())
	f.Add(syntheticModel())
	f.Add([]byte{0x08, 0x06, 0x3a, 0x00})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "m.onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, step := range []func(*onnxpb.ModelProto) error{
			func(m *onnxpb.ModelProto) error { _, err := AutoCastFP16(m); return err },
			func(m *onnxpb.ModelProto) error {
				return AddPoolingHead(m, engine.Pooling{Mode: engine.PoolMean, Normalize: true})
			},
			func(m *onnxpb.ModelProto) error { return AddPoolingHead(m, engine.Pooling{Mode: engine.PoolMax}) },
		} {
			m, err := LoadModel(p)
			if err != nil {
				return
			}
			_ = step(m)
		}
	})
}

// TestRewriteMalformedGraphs: graphs protobuf accepts but ONNX does not
// (nodes without outputs or inputs) are errors, not panics.
func TestRewriteMalformedGraphs(t *testing.T) {
	for _, op := range []string{"Cast", "Shape", "Equal", "ReduceMean", "Div", "Constant", "Add"} {
		for _, noInputs := range []bool{true, false} {
			m := &onnxpb.ModelProto{}
			if err := proto.Unmarshal(smallEncoder(), m); err != nil {
				t.Fatal(err)
			}
			n := &onnxpb.NodeProto{OpType: op, Name: "bad", Input: []string{"x"}}
			if noInputs {
				n.Input, n.Output = nil, []string{"y"}
			}
			m.Graph.Node = append(m.Graph.Node, n)
			_, _ = AutoCastFP16(m)
			_ = AddPoolingHead(m, engine.Pooling{Mode: engine.PoolMean})
		}
	}
}
