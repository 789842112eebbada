package onnxrt

import (
	"fmt"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

// tensorSig is a graph input or output as the engine needs it: element type
// ("int64", "int32", "float32", ...) and dims (-1 where symbolic or unknown).
type tensorSig struct {
	name  string
	dtype string
	dims  []int64
}

// signatures reads the graph's inputs and outputs from pkg/convert's report
// when it could read the graph (no second load of the model), else from a
// throw-away ONNX Runtime session, whose error then says what is wrong.
func signatures(path string, r *convert.Report) (ins, outs []tensorSig, err error) {
	if r != nil {
		return fromReport(r.Inputs), fromReport(r.Outputs), nil
	}
	oi, oo, err := describe(path)
	if err != nil {
		return nil, nil, err
	}
	return fromORT(oi), fromORT(oo), nil
}

func fromReport(vs []convert.ValueInfo) []tensorSig {
	out := make([]tensorSig, len(vs))
	for i, v := range vs {
		dims := make([]int64, len(v.Shape))
		for k, d := range v.Shape {
			dims[k] = -1
			if d.Known() {
				dims[k] = d.Value
			}
		}
		out[i] = tensorSig{name: v.Name, dtype: v.DType, dims: dims}
	}
	return out
}

func fromORT(vs []ort.InputOutputInfo) []tensorSig {
	out := make([]tensorSig, len(vs))
	for i, v := range vs {
		dtype := "other"
		switch {
		case v.OrtValueType != ort.ONNXTypeTensor:
			dtype = v.OrtValueType.String()
		case v.DataType == ort.TensorElementDataTypeInt64:
			dtype = "int64"
		case v.DataType == ort.TensorElementDataTypeInt32:
			dtype = "int32"
		case v.DataType == ort.TensorElementDataTypeFloat:
			dtype = "float32"
		default:
			dtype = v.DataType.String()
		}
		out[i] = tensorSig{name: v.Name, dtype: dtype, dims: append([]int64(nil), v.Dimensions...)}
	}
	return out
}

// describe reads the signatures through ONNX Runtime, without graph
// optimisation so that the throw-away session is quick to create.
func describe(path string) ([]ort.InputOutputInfo, []ort.InputOutputInfo, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("onnxruntime session options: %w", err)
	}
	defer opts.Destroy()
	_ = opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll)
	_ = opts.SetIntraOpNumThreads(1)
	ins, outs, err := ort.GetInputOutputInfoWithOptions(path, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, trimORT(err))
	}
	return ins, outs, nil
}

// pickInputs maps the graph's inputs to ids, mask and token types. Names are
// the Hugging Face ones; an encoder with a single unnamed-looking integer
// input is taken to want token ids.
func (e *Engine) pickInputs(ins []tensorSig) error {
	for _, in := range ins {
		var is32 bool
		switch in.dtype {
		case "int64":
		case "int32":
			is32 = true
		default:
			return fmt.Errorf("%s: input %q is %s; a BERT encoder takes int64 or int32 token ids", e.path, in.name, in.dtype)
		}
		if len(in.dims) != 2 {
			return fmt.Errorf("%s: input %q has shape %v; expected [batch, sequence]", e.path, in.name, in.dims)
		}
		n := strings.ToLower(in.name)
		var role inputRole
		switch {
		case strings.Contains(n, "mask"):
			role = roleMask
		case strings.Contains(n, "type"), strings.Contains(n, "segment"):
			role = roleTypes
		case strings.Contains(n, "ids"), strings.Contains(n, "input"), len(ins) == 1:
			role = roleIDs
		default:
			return fmt.Errorf("%s: input %q is not one of input_ids, attention_mask, token_type_ids", e.path, in.name)
		}
		for _, have := range e.inputs {
			if have.role == role {
				return fmt.Errorf("%s: inputs %q and %q both look like %s", e.path, have.name, in.name, roleName(role))
			}
		}
		e.inputs = append(e.inputs, input{name: in.name, role: role, int32: is32})
	}
	for _, in := range e.inputs {
		if in.role == roleIDs {
			return nil
		}
	}
	return fmt.Errorf("%s: no token-id input (input_ids) among %d inputs", e.path, len(ins))
}

func roleName(r inputRole) string {
	return [...]string{"input_ids", "attention_mask", "token_type_ids"}[r]
}

// pickOutput chooses the last hidden state: a 3-D float output
// [batch, seq, hidden]. Exports that also return the pooler output (the
// dynamo fixture's "tanh") have one such output; when several exist, one named
// like last_hidden_state wins, else the first. It returns the hidden width
// when the graph states it, else 0.
//
// A graph that pools itself (m3ectl export or convert --pooling) has a 2-D
// float output embeddings [batch, hidden]: that output is taken as is and
// e.pooled set. A 2-D output of fixed width also counts when it is the only
// one and no 3-D output exists (a pooled graph from another exporter).
func (e *Engine) pickOutput(outs []tensorSig) (int, error) {
	var cands, twoD []tensorSig
	var all []string
	for _, o := range outs {
		all = append(all, fmt.Sprintf("%s %s%v", o.name, o.dtype, o.dims))
		if o.dtype == "float32" && len(o.dims) == 3 {
			cands = append(cands, o)
		}
		if o.dtype == "float32" && len(o.dims) == 2 {
			if n := strings.ToLower(o.name); n == "embeddings" || n == "sentence_embedding" {
				e.output, e.pooled = o.name, true
				return int(max(o.dims[1], 0)), nil
			}
			if o.dims[1] > 0 {
				twoD = append(twoD, o) // [batch, hidden]: a fixed width, not a sequence
			}
		}
	}
	if len(cands) == 0 && len(twoD) == 1 {
		e.output, e.pooled = twoD[0].name, true
		return int(max(twoD[0].dims[1], 0)), nil
	}
	if len(cands) == 0 {
		return 0, fmt.Errorf("%s is not a sentence encoder: no 3-D float output [batch, seq, hidden] (outputs: %s)", e.path, strings.Join(all, ", "))
	}
	pick := cands[0]
	for _, c := range cands {
		if strings.Contains(strings.ToLower(c.name), "last_hidden_state") {
			pick = c
			break
		}
	}
	e.output = pick.name
	return int(max(pick.dims[2], 0)), nil
}
