package convert

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// ConvertOptions says how `m3ectl convert` rewrites an encoder.
type ConvertOptions struct {
	Pooling   string // "" or "none": keep the hidden-state output; "mean", "cls", "max": add the head
	Normalize bool   // L2-normalise after pooling
	Output    string // the [batch, seq, hidden] output to pool; "" picks it
	FP16      bool   // AutoCast: fp16 weights and compute, sensitive parts in fp32
	// ExternalData writes the weights to OUT.data; nil keeps what the input did.
	ExternalData *bool
}

// ConvertResult describes the rewritten graph.
type ConvertResult struct {
	Path         string          `json:"path"`
	ExternalData string          `json:"external_data,omitempty"`
	Output       string          `json:"output"` // the graph's output after the rewrite
	Pooled       bool            `json:"pooled"`
	FP16         *AutoCastReport `json:"fp16,omitempty"` // nil without FP16
	Report       *Report         `json:"report"`         // inspect of the written graph
}

// Convert rewrites the ONNX encoder at in and writes it to out: with
// FP16 the AutoCast TensorRT 11's strongly typed builder needs, with a
// pooling the sentence-embedding head. It works on graphs m3ectl did not
// write (torch.onnx.export at opset 11, the dynamo exporter with external
// data). out must differ from in; nothing is written on failure.
func Convert(in, out string, o ConvertOptions) (*ConvertResult, error) {
	if out == "" {
		return nil, errors.New("convert: no output file given (--out OUT.onnx)")
	}
	if same, _ := sameFile(in, out); same || filepath.Clean(in) == filepath.Clean(out) {
		return nil, fmt.Errorf("convert: --out %s is the input; write to another file", out)
	}
	var pool *engine.Pooling
	switch strings.ToLower(o.Pooling) {
	case "", "none":
		if o.Normalize {
			return nil, errors.New("convert: --normalize needs --pooling mean, cls or max")
		}
	default:
		mode, err := engine.ParsePoolingMode(o.Pooling)
		if err != nil {
			return nil, fmt.Errorf("convert: %w (or none)", err)
		}
		pool = &engine.Pooling{Mode: mode, Normalize: o.Normalize}
	}
	if pool == nil && o.Output != "" {
		return nil, errors.New("convert: --output names the output to pool; give --pooling too")
	}
	if pool == nil && !o.FP16 {
		return nil, errors.New("convert: nothing to do; give --pooling and/or --fp16")
	}
	before, err := Inspect(in)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	m, err := LoadModel(in)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	if _, ok := before.Embeddings(); !ok {
		if err := before.IsEncoder(); err != nil {
			return nil, fmt.Errorf("convert: %w; convert rewrites BERT-like encoders", err)
		}
	}
	res := &ConvertResult{Path: out}
	if o.FP16 {
		if res.FP16, err = AutoCastFP16(m); err != nil {
			return nil, fmt.Errorf("convert %s: %w", in, err)
		}
	}
	if pool != nil {
		if err := AddPoolingHeadOn(m, *pool, o.Output); err != nil {
			return nil, fmt.Errorf("convert %s: %w", in, err)
		}
	}
	external := len(before.ExternalData) > 0
	if o.ExternalData != nil {
		external = *o.ExternalData
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	if res.ExternalData, err = WriteModel(out, m, WriteOptions{ExternalData: external}); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	rep, err := Inspect(out)
	if err != nil {
		os.Remove(out)
		if res.ExternalData != "" {
			os.Remove(res.ExternalData)
		}
		return nil, fmt.Errorf("convert: the rewritten graph does not read back: %w", err)
	}
	res.Report = rep
	if e, ok := rep.Embeddings(); ok {
		res.Output, res.Pooled = e.Name, true
	} else if h, err := rep.HiddenStates(); err == nil {
		res.Output = h.Name
	}
	return res, nil
}
