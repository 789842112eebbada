package convert

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// builder appends nodes and initializers to a graph, at a given opset: the
// ops whose signature changed between opsets (axes as an attribute or as an
// input) are written in the form that opset defines. Names are prefixed so
// that nodes m3ectl adds to a foreign graph never collide with its own.
type builder struct {
	g      *onnxpb.GraphProto
	opset  int64
	prefix string
	n      int
	names  map[string]bool // every tensor name already in the graph
}

func newBuilder(g *onnxpb.GraphProto, opset int64, prefix string) *builder {
	b := &builder{g: g, opset: opset, prefix: prefix, names: map[string]bool{}}
	for _, v := range g.GetInput() {
		b.names[v.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		b.names[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			b.names[o] = true
		}
	}
	return b
}

// fresh returns an unused tensor name built from hint.
func (b *builder) fresh(hint string) string {
	for {
		b.n++
		name := fmt.Sprintf("%s%s_%d", b.prefix, hint, b.n)
		if !b.names[name] {
			b.names[name] = true
			return name
		}
	}
}

// node appends one node and returns its first output's name.
func (b *builder) node(op string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.fresh(op)
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{OpType: op, Name: out, Input: inputs, Output: []string{out}, Attribute: attrs})
	return out
}

// nodeTo is node with a chosen output name (a graph output).
func (b *builder) nodeTo(out, op string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	b.names[out] = true
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{OpType: op, Name: b.prefix + out, Input: inputs, Output: []string{out}, Attribute: attrs})
	return out
}

func (b *builder) initializer(t *onnxpb.TensorProto) string {
	if t.Name == "" {
		t.Name = b.fresh("const")
	}
	b.names[t.Name] = true
	b.g.Initializer = append(b.g.Initializer, t)
	return t.Name
}

// floats stores a float32 initializer as little-endian raw data.
func (b *builder) floats(name string, dims []int64, v []float32) string {
	return b.initializer(&onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: f32Bytes(v)})
}

// scalar is a rank-0 float32 constant.
func (b *builder) scalar(v float32) string {
	return b.initializer(&onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_FLOAT), RawData: f32Bytes([]float32{v})})
}

// int64s is a rank-1 int64 constant.
func (b *builder) int64s(v ...int64) string {
	return b.initializer(&onnxpb.TensorProto{Dims: []int64{int64(len(v))}, DataType: int32(onnxpb.TensorProto_INT64), RawData: i64Bytes(v)})
}

// int64Scalar is a rank-0 int64 constant.
func (b *builder) int64Scalar(v int64) string {
	return b.initializer(&onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_INT64), RawData: i64Bytes([]int64{v})})
}

// reduce writes ReduceSum/ReduceMean/ReduceMax over axes. ReduceSum takes
// its axes as an input from opset 13, the others from opset 18 (onnx
// Operators.md changelog).
func (b *builder) reduce(op, x string, keep bool, axes ...int64) string {
	since := int64(18)
	if op == "ReduceSum" {
		since = 13
	}
	k := intAttr1("keepdims", 0)
	if keep {
		k = intAttr1("keepdims", 1)
	}
	if b.opset >= since {
		return b.node(op, []string{x, b.int64s(axes...)}, k)
	}
	return b.node(op, []string{x}, k, intsAttr1("axes", axes...))
}

// unsqueeze adds axes; they became an input in opset 13.
func (b *builder) unsqueeze(x string, axes ...int64) string {
	if b.opset >= 13 {
		return b.node("Unsqueeze", []string{x, b.int64s(axes...)})
	}
	return b.node("Unsqueeze", []string{x}, intsAttr1("axes", axes...))
}

func (b *builder) cast(x string, to onnxpb.TensorProto_DataType) string {
	return b.node("Cast", []string{x}, intAttr1("to", int64(to)))
}

func intAttr1(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func intsAttr1(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

// tensorValue declares a graph input or output.
func tensorValue(name string, elem onnxpb.TensorProto_DataType, dims ...Dim) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d.Param != "" {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
		} else if d.Value > 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(elem), Shape: shape}}}}
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

func i64Bytes(v []int64) []byte {
	out := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(out[8*i:], uint64(x))
	}
	return out
}
