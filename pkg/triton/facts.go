package triton

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

// gatherFacts reads the width, limits and dtypes from the ONNX graph, the
// engine's build metadata and the tokenizer, and refuses settings they
// contradict.
func gatherFacts(o RepoOptions) (*modelFacts, []string, error) {
	f := &modelFacts{dim: o.Dim}
	var notes []string
	tok, err := loadTokenizer(o.Vocab)
	if err != nil {
		return nil, nil, fmt.Errorf("repo: %w", err)
	}
	f.tok = tok
	window := 0
	var onnxInputs []encoderInput
	if o.ONNX != "" && o.Engine != "" {
		// build-engine --pooling builds from a pooled rewrite of the graph
		// it is given; the repository needs that rewrite, not the original.
		if meta, err := convert.ReadEngineMeta(o.Engine); err == nil && meta != nil && meta.Pooled && meta.SourceONNX != "" && meta.ONNX != "" {
			if abs, _ := filepath.Abs(o.ONNX); abs == meta.SourceONNX && meta.ONNX != abs {
				if _, err := os.Stat(meta.ONNX); err == nil {
					notes = append(notes, "the engine was built from the pooled rewrite "+meta.ONNX+" of "+o.ONNX+"; the repository takes that graph")
					o.ONNX = meta.ONNX
				}
			}
		}
	}
	if o.ONNX != "" {
		rep, err := convert.Inspect(o.ONNX)
		if err != nil {
			return nil, nil, fmt.Errorf("repo: inspect %s: %w", o.ONNX, err)
		}
		f.extData = rep.ExternalData
		pooled, hidden := "", ""
		for _, out := range rep.Outputs {
			switch {
			case len(out.Shape) == 2 && strings.HasPrefix(out.DType, "float") && (pooled == "" || out.Name == OutputName):
				pooled = out.Name
				if w := out.Shape[1].Value; w > 0 && f.dim == 0 {
					f.dim = int(w)
				}
			case len(out.Shape) == 3:
				hidden = out.Name
			}
		}
		if pooled == "" {
			what := "no [batch, dim] float output"
			if hidden != "" {
				what = "hidden states " + hidden + " [batch, seq, hidden]"
			}
			return nil, nil, fmt.Errorf("repo: %s outputs %s; the repository's encoder must pool: m3ectl convert --onnx %s --out pooled.onnx --pooling mean --normalize (and build the engine from pooled.onnx)", o.ONNX, what, o.ONNX)
		}
		f.output = pooled
		for _, in := range rep.Inputs {
			onnxInputs = append(onnxInputs, encoderInput{name: in.Name, dtype: in.DType})
		}
		if a := rep.Architecture; a != nil {
			if a.Hidden > 0 && f.dim != 0 && f.dim != a.Hidden {
				return nil, nil, fmt.Errorf("repo: the pooled output is %d wide but the model's hidden size is %d", f.dim, a.Hidden)
			}
			if a.Hidden > 0 && f.dim == 0 {
				f.dim = a.Hidden
			}
			window = a.MaxPositions
		}
	}
	if o.Engine != "" {
		if err := engineFacts(o, f, onnxInputs, &notes); err != nil {
			return nil, nil, err
		}
	}
	if o.Encoder == EncoderONNX {
		f.inputs = onnxInputs
	}
	if f.dim <= 0 {
		return nil, nil, errors.New("repo: cannot tell the embedding width: pass --onnx or --dim, or build the engine with m3ectl build-engine (it records it)")
	}
	for _, in := range f.inputs {
		switch in.name {
		case "input_ids", "attention_mask", "token_type_ids":
		default:
			return nil, nil, fmt.Errorf("repo: encoder input %q: the tokenizer feeds input_ids, attention_mask and token_type_ids only", in.name)
		}
		if in.dtype != "int32" && in.dtype != "int64" {
			return nil, nil, fmt.Errorf("repo: encoder input %s is %s; want int32 or int64", in.name, in.dtype)
		}
	}
	if window == 0 {
		window = 512
	}
	if f.maxLength == 0 || window < f.maxLength {
		f.maxLength = window
	}
	if tok.MaxLength() < f.maxLength {
		f.maxLength = tok.MaxLength()
	}
	if o.MaxLength > 0 {
		if o.MaxLength > f.maxLength {
			return nil, nil, fmt.Errorf("repo: --max-length %d exceeds what the model/engine takes (%d)", o.MaxLength, f.maxLength)
		}
		f.maxLength = o.MaxLength
	}
	if f.maxBatch > 0 && int64(o.MaxBatchSize) > f.maxBatch {
		return nil, nil, fmt.Errorf("repo: --max-batch-size %d exceeds the engine's max profile batch %d; rebuild with a larger --max or lower it", o.MaxBatchSize, f.maxBatch)
	}
	if f.optBatch <= 0 || f.optBatch > int64(o.MaxBatchSize) {
		f.optBatch = min(int64(o.MaxBatchSize), 16)
	}
	if f.optSeq <= 0 || f.optSeq > int64(f.maxLength) {
		f.optSeq = min(int64(f.maxLength), 128)
	}
	if f.output == "" {
		f.output = OutputName
	}
	f.onnx = o.ONNX
	return f, notes, nil
}

// engineFacts takes what build-engine recorded beside the plan. Without
// metadata the engine's input dtype cannot be known (TensorRT 8.x casts
// int64 inputs to int32, 10.x keeps int64), so --input-dtype must say it.
func engineFacts(o RepoOptions, f *modelFacts, onnxInputs []encoderInput, notes *[]string) error {
	meta, err := convert.ReadEngineMeta(o.Engine)
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if meta == nil {
		if o.InputDType == "" && o.Encoder == EncoderTensorRT {
			return fmt.Errorf("repo: %s has no build metadata (%s), so the dtype its inputs take is unknown: pass --input-dtype int32 (TensorRT 8.x) or int64 (TensorRT 10 and later), or build it with m3ectl build-engine", o.Engine, convert.MetaPath(o.Engine))
		}
		*notes = append(*notes, "no build metadata beside the engine: profile limits unchecked, inputs taken as "+o.InputDType)
		if o.Encoder == EncoderTensorRT {
			names := onnxInputs
			if names == nil {
				names = []encoderInput{{name: "input_ids"}, {name: "attention_mask"}}
			}
			for _, in := range names {
				f.inputs = append(f.inputs, encoderInput{name: in.name, dtype: o.InputDType})
			}
		}
		return nil
	}
	f.trt = meta.TensorRT
	if meta.Hidden > 0 {
		if f.dim == 0 {
			f.dim = meta.Hidden
		} else if meta.Hidden != f.dim {
			return fmt.Errorf("repo: the engine was built for width %d, the model says %d", meta.Hidden, f.dim)
		}
	}
	f.maxBatch = meta.MaxBatch
	if meta.MaxSeq > 0 {
		f.maxLength = int(meta.MaxSeq)
	}
	outNames := map[string]bool{}
	for _, out := range meta.Outputs {
		outNames[out.Name] = true
		if len(out.Dims) == 2 && out.Dims[1] > 0 && (out.Name == OutputName || meta.Pooled) {
			if f.dim != 0 && f.dim != int(out.Dims[1]) {
				return fmt.Errorf("repo: the engine's output %s is %d wide, the model says %d", out.Name, out.Dims[1], f.dim)
			}
			f.dim = int(out.Dims[1])
		}
	}
	switch {
	case o.ONNX != "" && !outNames[f.output]:
		return fmt.Errorf("repo: the engine's outputs %v do not include %s, the pooled output of %s: build the engine from that graph", keys(outNames), f.output, o.ONNX)
	case o.ONNX == "" && !outNames[OutputName]:
		return fmt.Errorf("repo: the engine's outputs %v have no %q; the repository needs a pooled engine (build-engine --pooling mean --normalize, or m3ectl convert --pooling mean --normalize first), or pass --onnx with the graph it was built from", keys(outNames), OutputName)
	case o.ONNX == "":
		f.output = OutputName
	}
	for _, in := range meta.Inputs {
		if o.InputDType != "" && o.InputDType != in.DType {
			return fmt.Errorf("repo: --input-dtype %s contradicts the build metadata (%s takes %s)", o.InputDType, in.Name, in.DType)
		}
		if o.Encoder == EncoderTensorRT {
			f.inputs = append(f.inputs, encoderInput{name: in.Name, dtype: in.DType})
		}
		if len(in.Opt) == 2 && f.optBatch == 0 {
			f.optBatch, f.optSeq = in.Opt[0], in.Opt[1]
		}
	}
	return nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
