// Package testmodels makes the model files tests need from the bundled
// fixture, so that no large binary is committed twice.
package testmodels

import (
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

var pooled struct {
	sync.Mutex
	path string
}

// PooledOnce is Pooled, made once per process and shared.
func PooledOnce(tinyDir string) (string, error) {
	pooled.Lock()
	defer pooled.Unlock()
	if pooled.path != "" {
		return pooled.path, nil
	}
	p, err := Pooled(tinyDir)
	if err == nil {
		pooled.path = p
	}
	return p, err
}

// Remove deletes what PooledOnce made (call it from TestMain).
func Remove() {
	pooled.Lock()
	defer pooled.Unlock()
	if pooled.path != "" {
		os.RemoveAll(filepath.Dir(pooled.path))
		pooled.path = ""
	}
}

// Pooled writes tinyDir/model.onnx (m3e-tiny, hidden states [batch, seq,
// 64]) with a mean-pooling and L2-normalising head, outputting embeddings
// [batch, 64] as sentence-transformers computes them, into a new
// temporary folder, and returns its path. The caller removes the folder.
func Pooled(tinyDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(tinyDir, "model.onnx"))
	if err != nil {
		return "", err
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return "", err
	}
	g := m.Graph
	hidden := g.Output[0].Name
	ints := func(name string, v ...int64) *onnxpb.AttributeProto {
		return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
	}
	node := func(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) {
		g.Node = append(g.Node, &onnxpb.NodeProto{OpType: op, Input: in, Output: []string{out}, Name: "pool_" + out, Attribute: attrs})
	}
	scalar := func(name string, v float32) {
		g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: []float32{v}})
	}
	scalar("pool_eps", 1e-9)
	scalar("norm_eps", 1e-12)
	node("Cast", []string{"attention_mask"}, "mask_f", &onnxpb.AttributeProto{Name: "to", Type: onnxpb.AttributeProto_INT, I: int64(onnxpb.TensorProto_FLOAT)})
	node("Unsqueeze", []string{"mask_f"}, "mask_e", ints("axes", 2))
	node("Mul", []string{hidden, "mask_e"}, "masked")
	node("ReduceSum", []string{"masked"}, "summed", ints("axes", 1), &onnxpb.AttributeProto{Name: "keepdims", Type: onnxpb.AttributeProto_INT, I: 0})
	node("ReduceSum", []string{"mask_e"}, "counted", ints("axes", 1), &onnxpb.AttributeProto{Name: "keepdims", Type: onnxpb.AttributeProto_INT, I: 0})
	node("Max", []string{"counted", "pool_eps"}, "counted_c")
	node("Div", []string{"summed", "counted_c"}, "mean")
	node("ReduceL2", []string{"mean"}, "l2", ints("axes", 1), &onnxpb.AttributeProto{Name: "keepdims", Type: onnxpb.AttributeProto_INT, I: 1})
	node("Max", []string{"l2", "norm_eps"}, "l2_c")
	node("Div", []string{"mean", "l2_c"}, "embeddings")
	dim := func(p string, v int64) *onnxpb.TensorShapeProto_Dimension {
		if p != "" {
			return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: p}}
		}
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	g.Output = []*onnxpb.ValueInfoProto{{Name: "embeddings", Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: int32(onnxpb.TensorProto_FLOAT), Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{dim("batch_size", 0), dim("", 64)}}}}}}}
	out, err := proto.Marshal(m)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "m3ectl-pooled-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "model.onnx")
	return p, os.WriteFile(p, out, 0o644)
}
