package convert

import (
	"fmt"
	"math/bits"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// dtypeInfo names an ONNX element type the way numpy and the KServe/Triton
// world spell it, and gives its storage width in bits.
type dtypeInfo struct {
	name string
	bits int64
	// weight is true for types a learned weight is stored in: floating
	// point and the narrow integer types of quantised models.
	weight bool
}

var dtypes = map[onnxpb.TensorProto_DataType]dtypeInfo{
	onnxpb.TensorProto_FLOAT:          {"float32", 32, true},
	onnxpb.TensorProto_UINT8:          {"uint8", 8, true},
	onnxpb.TensorProto_INT8:           {"int8", 8, true},
	onnxpb.TensorProto_UINT16:         {"uint16", 16, false},
	onnxpb.TensorProto_INT16:          {"int16", 16, false},
	onnxpb.TensorProto_INT32:          {"int32", 32, false},
	onnxpb.TensorProto_INT64:          {"int64", 64, false},
	onnxpb.TensorProto_STRING:         {"string", 0, false},
	onnxpb.TensorProto_BOOL:           {"bool", 8, false},
	onnxpb.TensorProto_FLOAT16:        {"float16", 16, true},
	onnxpb.TensorProto_DOUBLE:         {"float64", 64, true},
	onnxpb.TensorProto_UINT32:         {"uint32", 32, false},
	onnxpb.TensorProto_UINT64:         {"uint64", 64, false},
	onnxpb.TensorProto_COMPLEX64:      {"complex64", 64, true},
	onnxpb.TensorProto_COMPLEX128:     {"complex128", 128, true},
	onnxpb.TensorProto_BFLOAT16:       {"bfloat16", 16, true},
	onnxpb.TensorProto_FLOAT8E4M3FN:   {"float8e4m3fn", 8, true},
	onnxpb.TensorProto_FLOAT8E4M3FNUZ: {"float8e4m3fnuz", 8, true},
	onnxpb.TensorProto_FLOAT8E5M2:     {"float8e5m2", 8, true},
	onnxpb.TensorProto_FLOAT8E5M2FNUZ: {"float8e5m2fnuz", 8, true},
	onnxpb.TensorProto_UINT4:          {"uint4", 4, true},
	onnxpb.TensorProto_INT4:           {"int4", 4, true},
	onnxpb.TensorProto_FLOAT4E2M1:     {"float4e2m1", 4, true},
	onnxpb.TensorProto_FLOAT8E8M0:     {"float8e8m0", 8, true},
}

// DTypeName names an ONNX TensorProto data type ("float32", "int64", ...);
// an unknown code reads "undefined" or "dtype(N)" rather than failing, so a
// model from a newer ONNX still inspects.
func DTypeName(code int32) string {
	if d, ok := dtypes[onnxpb.TensorProto_DataType(code)]; ok {
		return d.name
	}
	if code == 0 {
		return "undefined"
	}
	return fmt.Sprintf("dtype(%d)", code)
}

// DTypeBits is the storage width of an ONNX data type in bits, 0 when the
// type has no fixed width (string) or is unknown.
func DTypeBits(code int32) int64 { return dtypes[onnxpb.TensorProto_DataType(code)].bits }

// isFloat reports whether a data type is a floating-point one, the kind an
// encoder's hidden states come in.
func isFloat(code int32) bool {
	switch onnxpb.TensorProto_DataType(code) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_DOUBLE:
		return true
	}
	return false
}

// maxElements bounds a tensor's element count (2^50, petabytes of weights):
// only a corrupt file declares more, and the bound keeps every byte count
// and sum far from int64 overflow.
const maxElements = 1 << 50

// errShape is returned for dims an ONNX file cannot legally hold (negative
// sizes, or a product beyond maxElements), which only corrupt files contain.
var errShape = fmt.Errorf("tensor dims are negative or implausibly large")

// numElements multiplies dims, refusing negative dims and overflow.
func numElements(dims []int64) (int64, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, errShape
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > maxElements {
			return 0, errShape
		}
		n = int64(lo)
	}
	return n, nil
}

// storageBytes is the byte size of n ≤ maxElements elements of a type,
// rounding sub-byte types up as ONNX packs them (two int4 per byte).
func storageBytes(n int64, code int32) int64 { return (n*DTypeBits(code) + 7) / 8 }

// valueInfo converts an ONNX ValueInfoProto to the report's form, keeping
// symbolic dimension names.
func valueInfo(v *onnxpb.ValueInfoProto) ValueInfo {
	out := ValueInfo{Name: v.GetName(), DType: "undefined"}
	tt := v.GetType().GetTensorType()
	if tt == nil {
		if v.GetType() != nil {
			out.DType = "non-tensor"
		}
		return out
	}
	out.DType = DTypeName(tt.GetElemType())
	if sh := tt.GetShape(); sh != nil {
		out.Shape = make([]Dim, 0, len(sh.GetDim()))
		for _, d := range sh.GetDim() {
			switch x := d.GetValue().(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				out.Shape = append(out.Shape, Dim{Param: x.DimParam})
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				out.Shape = append(out.Shape, Dim{Value: x.DimValue})
			default:
				out.Shape = append(out.Shape, Dim{})
			}
		}
	}
	return out
}
