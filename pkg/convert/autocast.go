package convert

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
	"github.com/m3ectl/m3ectl/pkg/engine/safetensors"
)

// AutoCastReport says what AutoCastFP16 did.
type AutoCastReport struct {
	FP16Nodes    int      `json:"fp16_nodes"`
	FP32Nodes    int      `json:"fp32_nodes"`    // kept in fp32: LayerNorm, Softmax, pooling head
	Casts        int      `json:"casts"`         // Cast nodes inserted at precision boundaries
	FP16Weights  int64    `json:"fp16_weights"`  // weight elements stored in fp16
	Clamped      int64    `json:"clamped"`       // weight elements beyond ±65504, clamped
	KeptFP32Ops  []string `json:"kept_fp32_ops"` // op types of the fp32 nodes
	ModelOpset   int64    `json:"opset"`
	OutputsFloat []string `json:"outputs"` // graph outputs, still float32
}

// fp16Ops are the op types AutoCast knows to be safe, with float data
// flowing through, in fp16. An op outside this list and the fp32 list
// below, touching float tensors, stops the conversion: guessing would risk
// a graph that loads but computes garbage.
var fp16Ops = setOf("Add", "Sub", "Mul", "Div", "MatMul", "Gemm", "Relu", "Tanh", "Sigmoid", "Erf", "Sqrt", "Pow",
	"Neg", "Abs", "Exp", "Log", "Reciprocal", "Max", "Min", "Clip", "Where", "Equal", "Less", "Greater", "LessOrEqual",
	"GreaterOrEqual", "Not", "And", "Or", "Cast", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather",
	"GatherElements", "GatherND", "Slice", "Concat", "Expand", "Flatten", "Split", "Tile", "Shape", "Size", "Constant",
	"ConstantOfShape", "ReduceSum", "ReduceMax", "ReduceMin", "Dropout", "Gelu", "Trilu", "ScatterND", "Einsum")

// fp32Ops always compute in fp32 (TensorRT 11's strongly typed recipe,
// NVIDIA/TensorRT samples/python/strongly_type_autocast@v10.15: the
// normalisations and reductions that overflow or lose precision in fp16).
var fp32Ops = setOf("LayerNormalization", "Softmax", "ReduceMean", "ReduceL2", "Range")

// agnostic ops take any input type as is: no Cast is put before them.
var agnostic = setOf("Shape", "Size", "Cast")

func setOf(v ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range v {
		m[s] = true
	}
	return m
}

const (
	f32 = int32(onnxpb.TensorProto_FLOAT)
	f16 = int32(onnxpb.TensorProto_FLOAT16)
)

// AutoCastFP16 rewrites a float32 encoder for TensorRT's strongly typed
// mode: weights stored in fp16 and computation in fp16, except LayerNorm
// (LayerNormalization or its decomposed ReduceMean/Sub/Pow/Sqrt/Div chain),
// Softmax and m3ectl's pooling head, which stay fp32; Cast nodes are put at
// each boundary. Graph inputs and outputs keep their types (int64 ids in,
// float32 out). An op it does not know fails with the node's name.
func AutoCastFP16(m *onnxpb.ModelProto) (*AutoCastReport, error) {
	g := m.GetGraph()
	rep := &AutoCastReport{ModelOpset: defaultOpset(m)}
	for _, n := range g.GetNode() {
		if len(n.GetOutput()) == 0 || n.GetOutput()[0] == "" {
			return nil, fmt.Errorf("node %q (%s) has no output; the graph is malformed", n.GetName(), n.GetOpType())
		}
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil || len(a.GetGraphs()) > 0 {
				return nil, fmt.Errorf("node %q (%s) has a subgraph; --fp16 converts flat encoder graphs only (export the model with m3ectl export first)", n.GetName(), n.GetOpType())
			}
		}
	}
	// Graph outputs are re-produced at the end by a Cast back to their type.
	outType := map[string]int32{}
	for _, o := range g.GetOutput() {
		outType[o.GetName()] = o.GetType().GetTensorType().GetElemType()
		renameTensor(g, o.GetName(), o.GetName()+"_m3ectl_src")
		o.Name = strings.TrimSuffix(o.Name, "_m3ectl_src")
	}
	types := map[string]int32{}
	for _, in := range g.GetInput() {
		types[in.GetName()] = in.GetType().GetTensorType().GetElemType()
	}
	inits := map[string]*onnxpb.TensorProto{}
	consumers := map[string][]*onnxpb.NodeProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
		types[t.GetName()] = t.GetDataType()
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			consumers[in] = append(consumers[in], n)
		}
	}
	keep := fp32Nodes(g, consumers)
	b := newBuilder(g, rep.ModelOpset, "m3ectl.autocast/")
	var out []*onnxpb.NodeProto
	castOf := map[[2]string]string{} // (tensor, "16"/"32") → cast output
	halfInit := map[string]string{}  // fp32 initializer → its fp16 copy
	kept := map[string]bool{}
	for _, n := range g.GetNode() {
		float := false
		for _, t := range append(append([]string{}, n.GetInput()...), n.GetOutput()...) {
			if types[t] == f32 || types[t] == f16 {
				float = true
			}
		}
		if n.GetOpType() == "Constant" || n.GetOpType() == "ConstantOfShape" {
			float = constantIsFloat(n)
		}
		if n.GetOpType() == "Cast" && intAttr(n, "to") == int64(f32) {
			float = true
		}
		low := !keep[n] && !fp32Ops[n.GetOpType()]
		if float && low && !fp16Ops[n.GetOpType()] {
			return nil, fmt.Errorf("node %q: op %s is not one --fp16 knows to be safe in fp16; convert without --fp16, or export the model with m3ectl export, whose ops it knows", n.GetName(), n.GetOpType())
		}
		want := f32
		if low {
			want = f16
		}
		if float {
			if low {
				rep.FP16Nodes++
			} else {
				rep.FP32Nodes++
				kept[n.GetOpType()] = true
			}
		}
		// Inputs: bring every float input to the node's precision.
		for i, in := range n.GetInput() {
			ty := types[in]
			if in == "" || (ty != f32 && ty != f16) || ty == want || agnostic[n.GetOpType()] || !float {
				continue
			}
			if t := inits[in]; t != nil && ty == f32 && want == f16 {
				if h, ok := halfInit[in]; ok {
					n.Input[i] = h
					continue
				}
				name := in
				if !allConsumersLow(consumers[in], keep) {
					name = b.fresh("fp16_" + in)
				}
				half, clamped, err := toHalf(t, name)
				if err != nil {
					return nil, err
				}
				rep.Clamped += clamped
				rep.FP16Weights += int64(len(half.RawData) / 2)
				if name == in {
					t.DataType, t.RawData, t.FloatData = f16, half.RawData, nil
				} else {
					g.Initializer = append(g.Initializer, half)
				}
				types[name] = f16
				halfInit[in] = name
				n.Input[i] = name
				continue
			}
			key := [2]string{in, fmt.Sprint(want)}
			c, ok := castOf[key]
			if !ok {
				c = b.fresh("cast_" + in)
				out = append(out, &onnxpb.NodeProto{OpType: "Cast", Name: c, Input: []string{in}, Output: []string{c},
					Attribute: []*onnxpb.AttributeProto{intAttr1("to", int64(want))}})
				castOf[key] = c
				types[c] = want
				rep.Casts++
			}
			n.Input[i] = c
		}
		// Outputs: their element type under the node's precision.
		switch n.GetOpType() {
		case "Cast":
			to := int32(intAttr(n, "to"))
			if to == f32 && low {
				setIntAttr(n, "to", int64(f16))
				to = f16
			}
			types[n.Output[0]] = to
		case "Constant", "ConstantOfShape":
			ty, err := retypeConstant(n, low)
			if err != nil {
				return nil, err
			}
			for _, o := range n.GetOutput() {
				types[o] = ty
			}
		case "Shape", "Size":
			types[n.Output[0]] = int32(onnxpb.TensorProto_INT64)
		case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or":
			types[n.Output[0]] = int32(onnxpb.TensorProto_BOOL)
		default:
			ty := firstDataType(n, types)
			for _, o := range n.GetOutput() {
				types[o] = ty
			}
		}
		out = append(out, n)
	}
	g.Node = out
	for _, o := range g.GetOutput() {
		src := o.GetName() + "_m3ectl_src"
		want := outType[o.GetName()]
		if types[src] != want && (types[src] == f16 || types[src] == f32) {
			b.nodeTo(o.GetName(), "Cast", []string{src}, intAttr1("to", int64(want)))
			rep.Casts++
		} else {
			b.nodeTo(o.GetName(), "Identity", []string{src})
		}
		rep.OutputsFloat = append(rep.OutputsFloat, o.GetName())
	}
	g.ValueInfo = nil // element types changed; consumers re-infer shapes
	prune(g)
	for op := range kept {
		rep.KeptFP32Ops = append(rep.KeptFP32Ops, op)
	}
	sort.Strings(rep.KeptFP32Ops)
	return rep, nil
}

// firstDataType is the element type of a node's output for the ops that
// pass their data input's type through: Where's data is input 1, the
// others' input 0 (indices and shapes are never first).
func firstDataType(n *onnxpb.NodeProto, types map[string]int32) int32 {
	ins := n.GetInput()
	if n.GetOpType() == "Where" && len(ins) > 1 {
		return types[ins[1]]
	}
	for _, in := range ins {
		if ty := types[in]; ty == f32 || ty == f16 {
			return ty
		}
	}
	if len(ins) > 0 {
		return types[ins[0]]
	}
	return 0
}

func allConsumersLow(ns []*onnxpb.NodeProto, keep map[*onnxpb.NodeProto]bool) bool {
	for _, n := range ns {
		if keep[n] || fp32Ops[n.GetOpType()] || agnostic[n.GetOpType()] {
			return false
		}
	}
	return true
}

// fp32Nodes finds the nodes kept in fp32 beyond fp32Ops: m3ectl's pooling
// head and the decomposed LayerNorm chain torch.onnx writes before opset 17:
// x → ReduceMean → Sub(x, mean) → Pow(·, 2) → ReduceMean → Add(ε) → Sqrt →
// Div(Sub, Sqrt) [→ Mul(γ) → Add(β)].
func fp32Nodes(g *onnxpb.GraphProto, consumers map[string][]*onnxpb.NodeProto) map[*onnxpb.NodeProto]bool {
	keep := map[*onnxpb.NodeProto]bool{}
	next := func(n *onnxpb.NodeProto, op string) *onnxpb.NodeProto {
		for _, c := range consumers[n.GetOutput()[0]] {
			if c.GetOpType() == op {
				return c
			}
		}
		return nil
	}
	for _, n := range g.GetNode() {
		if strings.HasPrefix(n.GetName(), headPrefix) {
			keep[n] = true
		}
		if n.GetOpType() != "ReduceMean" || len(n.GetInput()) == 0 {
			continue
		}
		sub := next(n, "Sub")
		if sub == nil || len(sub.GetInput()) != 2 || sub.GetInput()[0] != n.GetInput()[0] {
			continue
		}
		pow := next(sub, "Pow")
		if pow == nil {
			continue
		}
		mean2 := next(pow, "ReduceMean")
		if mean2 == nil {
			continue
		}
		add := next(mean2, "Add")
		if add == nil {
			continue
		}
		sqrt := next(add, "Sqrt")
		if sqrt == nil {
			continue
		}
		div := next(sqrt, "Div")
		if div == nil || len(div.GetInput()) == 0 || div.GetInput()[0] != sub.GetOutput()[0] {
			continue
		}
		for _, k := range []*onnxpb.NodeProto{n, sub, pow, mean2, add, sqrt, div} {
			keep[k] = true
		}
		if mul := next(div, "Mul"); mul != nil {
			keep[mul] = true
			if beta := next(mul, "Add"); beta != nil {
				keep[beta] = true
			}
		}
	}
	return keep
}

func constantIsFloat(n *onnxpb.NodeProto) bool {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			ty := a.GetT().GetDataType()
			return ty == f32 || ty == f16
		case "value_float", "value_floats":
			return true
		}
	}
	// ConstantOfShape without value fills float32 zeros.
	return n.GetOpType() == "ConstantOfShape"
}

// retypeConstant converts a float Constant/ConstantOfShape's value to fp16
// when the node runs low, and returns the output's element type.
func retypeConstant(n *onnxpb.NodeProto, low bool) (int32, error) {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			t := a.GetT()
			if t.GetDataType() == f32 && low {
				h, _, err := toHalf(t, t.GetName())
				if err != nil {
					return 0, fmt.Errorf("node %q: %w", n.GetName(), err)
				}
				a.T = h
			}
			return a.GetT().GetDataType(), nil
		case "value_float", "value_floats":
			if !low {
				return f32, nil
			}
			vals := a.GetFloats()
			dims := []int64{int64(len(vals))}
			if a.GetName() == "value_float" {
				vals, dims = []float32{a.GetF()}, nil
			}
			h, _, _ := toHalf(&onnxpb.TensorProto{DataType: f32, Dims: dims, FloatData: vals}, "")
			*a = onnxpb.AttributeProto{Name: "value", Type: onnxpb.AttributeProto_TENSOR, T: h}
			return f16, nil
		case "value_int", "value_ints":
			return int32(onnxpb.TensorProto_INT64), nil
		}
	}
	if n.GetOpType() == "ConstantOfShape" {
		if low {
			n.Attribute = append(n.Attribute, &onnxpb.AttributeProto{Name: "value", Type: onnxpb.AttributeProto_TENSOR,
				T: &onnxpb.TensorProto{DataType: f16, Dims: []int64{1}, RawData: []byte{0, 0}}})
			return f16, nil
		}
		return f32, nil
	}
	return 0, nil
}

// toHalf converts a float32 tensor to float16 (round to nearest even),
// clamping to ±65504 what fp16 cannot hold, as onnxconverter-common does.
func toHalf(t *onnxpb.TensorProto, name string) (*onnxpb.TensorProto, int64, error) {
	vals, err := tensorFloats(t)
	if err != nil {
		return nil, 0, err
	}
	raw := make([]byte, 2*len(vals))
	var clamped int64
	for i, v := range vals {
		if v > 65504 || v < -65504 {
			if !math.IsInf(float64(v), 0) {
				clamped++
				v = float32(math.Copysign(65504, float64(v)))
			}
		}
		binary.LittleEndian.PutUint16(raw[2*i:], safetensors.FloatToHalf(v))
	}
	return &onnxpb.TensorProto{Name: name, Dims: t.GetDims(), DataType: f16, RawData: raw, DocString: t.GetDocString()}, clamped, nil
}

// tensorFloats reads a float32 tensor's values from raw_data or float_data.
func tensorFloats(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q: external data not loaded", t.GetName())
	}
	if raw := t.GetRawData(); len(raw) > 0 || len(t.GetFloatData()) == 0 {
		if len(raw)%4 != 0 {
			return nil, fmt.Errorf("tensor %q: raw data of %d bytes is not float32", t.GetName(), len(raw))
		}
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	}
	return append([]float32(nil), t.GetFloatData()...), nil
}

func setIntAttr(n *onnxpb.NodeProto, name string, v int64) {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			a.I = v
			return
		}
	}
	n.Attribute = append(n.Attribute, intAttr1(name, v))
}
