package convert

import (
	"encoding/binary"
	"math"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// constants indexes the small constant tensors of a graph by value name:
// initializers whose data the reader kept and the outputs of Constant nodes.
// Architecture detection reads attention scales and reshape targets from it.
type constants map[string]*onnxpb.TensorProto

func graphConstants(g *onnxpb.GraphProto) constants {
	c := constants{}
	for _, t := range g.GetInitializer() {
		c[t.GetName()] = t
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Constant" || len(n.GetOutput()) != 1 {
			continue
		}
		for _, a := range n.GetAttribute() {
			var t *onnxpb.TensorProto
			switch a.GetName() {
			case "value":
				t = a.GetT()
			case "value_float":
				t = &onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: []float32{a.GetF()}}
			case "value_int":
				t = &onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_INT64), Int64Data: []int64{a.GetI()}}
			case "value_ints":
				t = &onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_INT64), Dims: []int64{int64(len(a.GetInts()))}, Int64Data: a.GetInts()}
			case "value_floats":
				t = &onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_FLOAT), Dims: []int64{int64(len(a.GetFloats()))}, FloatData: a.GetFloats()}
			}
			if t != nil {
				c[n.GetOutput()[0]] = t
			}
		}
	}
	return c
}

// ints returns the values of a small integer constant.
func (c constants) ints(name string) ([]int64, bool) {
	t, ok := c[name]
	if !ok {
		return nil, false
	}
	n, err := numElements(t.GetDims())
	if err != nil || n > smallTensor {
		return nil, false
	}
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_INT64:
		if len(t.GetInt64Data()) == int(n) {
			return t.GetInt64Data(), true
		}
		raw := t.GetRawData()
		if len(raw) != int(n)*8 {
			return nil, false
		}
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return out, true
	case onnxpb.TensorProto_INT32:
		out := make([]int64, 0, n)
		if len(t.GetInt32Data()) == int(n) {
			for _, v := range t.GetInt32Data() {
				out = append(out, int64(v))
			}
			return out, true
		}
		raw := t.GetRawData()
		if len(raw) != int(n)*4 {
			return nil, false
		}
		for i := 0; i < int(n); i++ {
			out = append(out, int64(int32(binary.LittleEndian.Uint32(raw[4*i:]))))
		}
		return out, true
	}
	return nil, false
}

// scalar returns the value of a one-element floating-point constant.
func (c constants) scalar(name string) (float64, bool) {
	t, ok := c[name]
	if !ok {
		return 0, false
	}
	if n, err := numElements(t.GetDims()); err != nil || n != 1 {
		return 0, false
	}
	raw := t.GetRawData()
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		if len(t.GetFloatData()) == 1 {
			return float64(t.GetFloatData()[0]), true
		}
		if len(raw) == 4 {
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(raw))), true
		}
	case onnxpb.TensorProto_DOUBLE:
		if len(t.GetDoubleData()) == 1 {
			return t.GetDoubleData()[0], true
		}
		if len(raw) == 8 {
			return math.Float64frombits(binary.LittleEndian.Uint64(raw)), true
		}
	case onnxpb.TensorProto_FLOAT16:
		// float16 values sit in int32_data, or two bytes of raw_data.
		if len(t.GetInt32Data()) == 1 {
			return halfToFloat(uint16(t.GetInt32Data()[0])), true
		}
		if len(raw) == 2 {
			return halfToFloat(binary.LittleEndian.Uint16(raw)), true
		}
	}
	return 0, false
}

// halfToFloat decodes an IEEE 754 half-precision number.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}
