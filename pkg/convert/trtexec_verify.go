package convert

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// VerifyRequest is what `m3ectl verify-engine` asks for.
type VerifyRequest struct {
	Engine  string
	Trtexec string
	// ONNX, when set, adds the parity run: the same tokenised sentences
	// through the engine (trtexec --loadInputs/--exportOutput) and through
	// ONNX Runtime.
	ONNX      string
	Tokenizer string   // vocab.txt, tokenizer.json or a folder; "" = next to the ONNX file
	ORTLib    string   // ONNX Runtime library; "" = $ONNXRUNTIME_LIB or the setup location
	Sentences []string // nil = DefaultParitySentences
	AbsTol    float64  // largest |Δ| of hidden states allowed (0 = DefaultAbsTol)
	MinCosine float64  // smallest cosine of pooled embeddings allowed (0 = DefaultMinCosine)
	WorkDir   string   // where the input/output files go; "" = a temporary folder
	Progress  Progress
}

// Parity tolerances fit for an fp16 engine against the fp32 ONNX model.
const (
	DefaultAbsTol    = 2e-2
	DefaultMinCosine = 0.999
)

// DefaultParitySentences are the article's four client sentences plus
// English, mixed-script and longer ones, so rows of different lengths pad.
var DefaultParitySentences = []string{
	"酒店很好",
	"pip清华源 清华大学的镜像",
	"源这篇文章主要为大家介绍了如何",
	"关内容,包含IT学习相关文档",
	"m3e 是一个中文句向量模型",
	"Hello, world! Sentence embeddings with TensorRT.",
	"今天天气不错，我们一起去公园散步吧，顺便买一杯咖啡。",
	"BERT",
}

// VerifyResult is what verify-engine reports.
type VerifyResult struct {
	Engine   string      `json:"engine"`
	TensorRT string      `json:"tensorrt"`
	Bindings []Binding   `json:"bindings,omitempty"`
	Meta     *EngineMeta `json:"meta,omitempty"`
	Parity   *Parity     `json:"parity,omitempty"`
	LogPath  string      `json:"log"`
}

// Parity is the engine-versus-ONNX-Runtime comparison.
type Parity struct {
	Sentences  int     `json:"sentences"`
	Batch      int     `json:"batch"`
	Seq        int     `json:"seq"`
	Output     string  `json:"output"`
	InputDType string  `json:"input_dtype"`
	MaxAbsDiff float64 `json:"max_abs_diff"`
	MinCosine  float64 `json:"min_cosine"`
	AbsTol     float64 `json:"abs_tolerance"`
	CosTol     float64 `json:"min_cosine_required"`
	Passed     bool    `json:"passed"`
}

// ParityError is a parity run whose numbers are outside the tolerance.
type ParityError struct{ P *Parity }

// Error implements error.
func (e *ParityError) Error() string {
	return fmt.Sprintf("engine and ONNX Runtime disagree: max |Δ| %.3g (allowed %.3g), min cosine %.6f (required %.6f)",
		e.P.MaxAbsDiff, e.P.AbsTol, e.P.MinCosine, e.P.CosTol)
}

// VerifyEngine proves the engine deserialises on this machine's TensorRT
// and, with req.ONNX, that it computes what the ONNX model computes.
func VerifyEngine(ctx context.Context, req VerifyRequest) (*VerifyResult, error) {
	if st, err := os.Stat(req.Engine); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	} else if st.Size() == 0 {
		return nil, fmt.Errorf("engine %s is empty", req.Engine)
	}
	trtexec, err := FindTrtexec(req.Trtexec)
	if err != nil {
		return nil, err
	}
	ver, err := ProbeVersion(ctx, trtexec)
	if err != nil {
		return nil, err
	}
	meta, err := ReadEngineMeta(req.Engine)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Engine: absPath(req.Engine), TensorRT: ver.String(), Meta: meta, LogPath: absPath(req.Engine) + ".verify.log"}
	args := LoadArgs(ver, res.Engine)
	if !ver.AtLeast(8, 6) && meta != nil {
		// The single inference run needs shapes for the dynamic inputs.
		args = append(args, "--shapes="+metaShapes(meta))
	}
	run, err := RunTrtexec(ctx, trtexec, args, res.LogPath, req.Progress)
	if err != nil {
		return nil, err
	}
	if err := run.Failure("load engine"); err != nil {
		return nil, err
	}
	res.Bindings = run.Bindings
	if req.ONNX == "" {
		return res, nil
	}
	p, bindings, err := runParity(ctx, trtexec, ver, meta, res, req)
	if err != nil {
		return nil, err
	}
	if len(bindings) > 0 {
		res.Bindings = bindings
	}
	res.Parity = p
	if !p.Passed {
		return res, &ParityError{P: p}
	}
	return res, nil
}

// LoadArgs are the arguments that deserialise an engine without a timing
// run: --skipInference from TensorRT 8.6, a single zero-warm-up iteration
// before.
func LoadArgs(v TRTVersion, engine string) []string {
	args := []string{"--loadEngine=" + engine}
	if v.AtLeast(8, 6) {
		return append(args, "--skipInference")
	}
	return append(args, inferOnceArgs...)
}

// inferOnceArgs run exactly one inference with no warm-up or timing window.
var inferOnceArgs = []string{"--iterations=1", "--warmUp=0", "--duration=0", "--avgRuns=1"}

// FindTokenizer looks for tokenizer.json or vocab.txt next to the ONNX file
// and in its parent folder (the HF layout keeps the ONNX in onnx/).
func FindTokenizer(onnx string) (string, error) {
	dir := filepath.Dir(onnx)
	for _, d := range []string{dir, filepath.Dir(dir)} {
		for _, f := range []string{"tokenizer.json", "vocab.txt"} {
			p := filepath.Join(d, f)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("no tokenizer.json or vocab.txt next to %s or in its parent; pass --vocab", onnx)
}

// fillValue is what each known BERT input holds for token t of a row
// (pad reports whether the position is padding).
func fillValue(name string, id int32, pad bool) (int64, error) {
	switch {
	case strings.Contains(name, "input_ids"):
		if pad {
			return 0, nil
		}
		return int64(id), nil
	case strings.Contains(name, "attention_mask") || strings.Contains(name, "input_mask"):
		if pad {
			return 0, nil
		}
		return 1, nil
	case strings.Contains(name, "token_type_ids") || strings.Contains(name, "segment_ids"):
		return 0, nil
	}
	return 0, errors.New("input " + name + " is not input_ids, attention_mask or token_type_ids; verify-engine cannot fill it")
}

// metaShapes is the engine's opt shapes as a trtexec --shapes list.
func metaShapes(m *EngineMeta) string {
	parts := make([]string, 0, len(m.Inputs))
	for _, in := range m.Inputs {
		parts = append(parts, quoteInputName(in.Name)+":"+FormatDims(in.Opt))
	}
	return strings.Join(parts, ",")
}
