// Package triton writes Triton Inference Server model repositories for BERT
// sentence-embedding models and launches tritonserver on them.
//
// Three layouts (see layout*.go). The default, "bls", loads in a stock
// tritonserver:26.xx-py3 image with nothing installed: a Python-backend
// model that tokenises with numpy and the standard library and calls the
// pooled encoder (tensorrt_plan or onnxruntime_onnx) through BLS.
// "ensemble" wires the same two parts as a Triton ensemble; "python" is the
// article's single model.py running TensorRT itself (it needs a custom
// image). config.pbtxt files are built as tritonpb.ModelConfig messages,
// checked with the rules Triton core applies when it loads them, written
// with tritonpb.FormatConfig and read back.
package triton

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

//go:embed python/*.py
var pythonFiles embed.FS

// Layouts.
const (
	LayoutBLS      = "bls"
	LayoutEnsemble = "ensemble"
	LayoutPython   = "python"
)

// Encoders of the bls and ensemble layouts.
const (
	EncoderTensorRT = "tensorrt"
	EncoderONNX     = "onnx"
)

// RepoOptions is what `m3ectl repo` asks for.
type RepoOptions struct {
	Name            string // model name clients call ("m3e-base-trt")
	Out             string // repository root
	Engine          string // TensorRT plan (pooled: outputs embeddings [N, dim])
	ONNX            string // pooled ONNX graph: the onnxruntime_onnx encoder, or copied beside the plan for m3ectl serve
	Vocab           string // vocab.txt (tokenizer_config.json beside it is honoured)
	Encoder         string // "tensorrt" (default with --engine) or "onnx"
	InputDType      string // engine input dtype when the engine has no build metadata: int32 or int64
	MaxBatchSize    int
	Instances       int
	Kind            string // "gpu" or "cpu"
	GPUs            []int32
	MaxQueueDelayUs int
	Layout          string
	Version         int
	Dim             int    // embedding width; 0: from the ONNX graph or the engine's metadata
	MaxLength       int    // tokens per text; 0: the model's window capped by the engine's profile
	TritonImage     string // image the repository is meant for: refused when its TensorRT differs from the engine's
	Force           bool   // write even when TritonImage does not match
}

// RepoResult says what was written and what was checked.
type RepoResult struct {
	Root        string   `json:"root"`
	Layout      string   `json:"layout"`
	Models      []string `json:"models"`
	Files       []string `json:"files"`
	Dim         int      `json:"dim"`
	MaxLength   int      `json:"max_length"`
	InputDType  string   `json:"encoder_input_dtype,omitempty"`
	TensorRT    string   `json:"tensorrt,omitempty"`
	Checks      []string `json:"checks"`
	Notes       []string `json:"notes,omitempty"`
	EngineBatch int64    `json:"engine_max_batch,omitempty"`
}

// modelFacts is what the repository needs to know about the encoder.
type modelFacts struct {
	dim       int
	maxLength int
	maxBatch  int64 // engine's max profile batch, 0 if unknown
	optBatch  int64 // profile's opt shape, for model_warmup
	optSeq    int64
	inputs    []encoderInput
	output    string // the pooled output ("embeddings")
	trt       string // TensorRT version that built the engine, "" when unknown
	extData   []string
	tok       *tokenizer.Tokenizer
	onnx      string // the graph the repository takes (a pooled rewrite of --onnx when the engine was built from one)
}

// encoderInput is one input of the encoder with the dtype the encoder
// itself takes ("int32" or "int64").
type encoderInput struct {
	name, dtype string
}

// WriteRepository checks the options against the model, plans the
// repository, validates the plan as Triton core would, writes it (each file
// through a temporary name) and reads it back.
func WriteRepository(o RepoOptions) (*RepoResult, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	facts, notes, err := gatherFacts(o)
	if err != nil {
		return nil, err
	}
	o.ONNX = facts.onnx
	if o.TritonImage != "" {
		note, err := CheckImage(o.TritonImage, facts.trt, o.Force)
		if err != nil {
			return nil, fmt.Errorf("repo: %w", err)
		}
		if note != "" {
			notes = append(notes, note)
		}
	}
	res := &RepoResult{Root: o.Out, Layout: o.Layout, Dim: facts.dim, MaxLength: facts.maxLength, Notes: notes,
		EngineBatch: facts.maxBatch, TensorRT: facts.trt}
	if len(facts.inputs) > 0 {
		res.InputDType = facts.inputs[0].dtype
	}
	var plan []*plannedModel
	switch o.Layout {
	case LayoutBLS:
		plan, err = blsLayout(o, facts)
	case LayoutEnsemble:
		plan, err = ensembleLayout(o, facts)
	case LayoutPython:
		plan, err = pythonLayout(o, facts)
	}
	if err != nil {
		return nil, err
	}
	if problems := checkPlan(plan); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	res.Checks = append(res.Checks, "configs pass Triton core's load-time rules (model_config_utils.cc, ensemble_utils.cc)")
	w := &writer{root: o.Out, res: res}
	for _, m := range plan {
		if err := w.model(m); err != nil {
			return nil, err
		}
		res.Models = append(res.Models, m.cfg.Name)
	}
	checks, err := Validate(o.Out, plan, facts)
	res.Checks = append(res.Checks, checks...)
	return res, err
}

func (o *RepoOptions) check() error {
	if o.Layout == "" {
		o.Layout = LayoutBLS
	}
	if o.Encoder == "" {
		o.Encoder = EncoderTensorRT
		if o.Engine == "" {
			o.Encoder = EncoderONNX
		}
	}
	switch {
	case o.Name == "":
		return errors.New("repo: --name is required")
	case o.Out == "":
		return errors.New("repo: --out is required")
	case o.Vocab == "":
		return errors.New("repo: --vocab is required")
	case o.Layout != LayoutBLS && o.Layout != LayoutEnsemble && o.Layout != LayoutPython:
		return fmt.Errorf("repo: --layout %q: want bls, ensemble or python", o.Layout)
	case o.Encoder != EncoderTensorRT && o.Encoder != EncoderONNX:
		return fmt.Errorf("repo: --encoder %q: want tensorrt or onnx", o.Encoder)
	case o.Kind != "gpu" && o.Kind != "cpu":
		return fmt.Errorf("repo: --kind %q: want gpu or cpu", o.Kind)
	case o.Encoder == EncoderTensorRT && o.Engine == "":
		return errors.New("repo: the tensorrt encoder needs --engine (a plan from m3ectl build-engine); or pass --encoder onnx --onnx MODEL.onnx")
	case o.Encoder == EncoderONNX && o.ONNX == "":
		return errors.New("repo: --encoder onnx needs --onnx (a pooled graph from m3ectl export or convert --pooling mean --normalize)")
	case o.Layout == LayoutPython && o.Engine == "":
		return errors.New("repo: the python layout runs a TensorRT engine: pass --engine")
	case o.Layout == LayoutPython && o.Encoder == EncoderONNX:
		return errors.New("repo: the python layout runs TensorRT itself; --encoder onnx belongs to the bls and ensemble layouts")
	case (o.Encoder == EncoderTensorRT || o.Layout == LayoutPython) && o.Kind == "cpu":
		return errors.New("repo: TensorRT runs on GPU instances only; use --kind gpu, or --encoder onnx for a CPU Triton")
	case o.InputDType != "" && o.InputDType != "int32" && o.InputDType != "int64":
		return fmt.Errorf("repo: --input-dtype %q: want int32 or int64", o.InputDType)
	case o.MaxBatchSize < 1:
		return fmt.Errorf("repo: --max-batch-size %d: must be at least 1", o.MaxBatchSize)
	case o.Instances < 1:
		return fmt.Errorf("repo: --instances %d: must be at least 1", o.Instances)
	case o.Version < 1:
		return fmt.Errorf("repo: --version %d: must be at least 1", o.Version)
	case o.MaxQueueDelayUs < 0:
		return fmt.Errorf("repo: --max-queue-delay-us %d is negative", o.MaxQueueDelayUs)
	}
	for _, p := range []string{o.Engine, o.ONNX, o.Vocab} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err != nil {
			return fmt.Errorf("repo: %w", err)
		} else if st.IsDir() {
			return fmt.Errorf("repo: %s is a folder, want a file", p)
		}
	}
	return nil
}

// loadTokenizer reads vocab.txt with tokenizer_config.json beside it when
// there is one (do_lower_case, strip_accents, tokenize_chinese_chars,
// model_max_length), as transformers does when it loads the folder.
func loadTokenizer(vocab string) (*tokenizer.Tokenizer, error) {
	if strings.HasSuffix(strings.ToLower(vocab), ".json") {
		return nil, fmt.Errorf("--vocab %s: give the model's vocab.txt (the repository's Python tokenizer reads it; its settings come from tokenizer_config.json beside it)", vocab)
	}
	dir := filepath.Dir(vocab)
	if filepath.Base(vocab) == "vocab.txt" {
		if _, err := os.Stat(filepath.Join(dir, "tokenizer_config.json")); err == nil {
			return tokenizer.Load(dir)
		}
	}
	return tokenizer.FromVocabFile(vocab, tokenizer.DefaultOptions())
}
