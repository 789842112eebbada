// Package triton writes Triton Inference Server model repositories for BERT
// sentence-embedding models and launches tritonserver on them.
//
// Two layouts: "python" (the article's: one Python-backend model that
// tokenises, runs the TensorRT engine, mean-pools and normalises) and
// "ensemble" (tokenizer → tensorrt_plan or onnxruntime_onnx → pooling, wired
// by an ensemble config). config.pbtxt files are built as tritonpb.ModelConfig
// messages and written with tritonpb.FormatConfig, so they are Triton's own
// schema, and read back by Validate.
package triton

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

//go:embed python/*.py
var pythonFiles embed.FS

// Layouts.
const (
	LayoutPython   = "python"
	LayoutEnsemble = "ensemble"
)

// RepoOptions is what `m3ectl repo` asks for.
type RepoOptions struct {
	Name            string // model name clients call ("m3e-base-trt")
	Out             string // repository root
	Engine          string // TensorRT plan; "" only for the ensemble layout with ONNX
	ONNX            string // optional: copied into the version folder (CPU serving, onnxruntime_onnx)
	Vocab           string // vocab.txt
	MaxBatchSize    int
	Instances       int
	Kind            string // "gpu" or "cpu"
	GPUs            []int32
	MaxQueueDelayUs int
	Layout          string
	Version         int
	Dim             int // embedding width; 0: from the ONNX graph or the engine's metadata
	MaxLength       int // tokens per text; 0: 512 capped by the engine's profile
}

// RepoResult says what was written and what was checked.
type RepoResult struct {
	Root        string   `json:"root"`
	Models      []string `json:"models"`
	Files       []string `json:"files"`
	Dim         int      `json:"dim"`
	MaxLength   int      `json:"max_length"`
	InputDType  string   `json:"engine_input_dtype,omitempty"`
	Checks      []string `json:"checks"`
	Notes       []string `json:"notes,omitempty"`
	EngineBatch int64    `json:"engine_max_batch,omitempty"`
}

// modelFacts is what the repository needs to know about the model.
type modelFacts struct {
	dim        int
	maxLength  int
	maxBatch   int64 // engine's max profile batch, 0 if unknown
	inputs     []convert.ValueInfo
	hidden     string // name of the [batch, seq, hidden] output
	engineType map[string]string
	extData    []string
}

// WriteRepository writes the repository and validates it.
func WriteRepository(o RepoOptions) (*RepoResult, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	facts, notes, err := gatherFacts(o)
	if err != nil {
		return nil, err
	}
	res := &RepoResult{Root: o.Out, Dim: facts.dim, MaxLength: facts.maxLength, Notes: notes, EngineBatch: facts.maxBatch}
	w := &writer{root: o.Out, res: res}
	var plan []*plannedModel
	switch o.Layout {
	case LayoutPython:
		plan = pythonLayout(o, facts)
	case LayoutEnsemble:
		plan = ensembleLayout(o, facts)
		if o.Engine != "" {
			res.InputDType = facts.engineType[facts.inputs[0].Name]
		}
	}
	for _, m := range plan {
		if err := w.model(m); err != nil {
			return nil, err
		}
		res.Models = append(res.Models, m.cfg.Name)
	}
	checks, err := Validate(o.Out, plan, facts)
	res.Checks = checks
	if err != nil {
		return res, err
	}
	return res, nil
}

func (o *RepoOptions) check() error {
	switch {
	case o.Name == "":
		return errors.New("repo: --name is required")
	case o.Out == "":
		return errors.New("repo: --out is required")
	case o.Vocab == "":
		return errors.New("repo: --vocab is required")
	case o.Layout != LayoutPython && o.Layout != LayoutEnsemble:
		return fmt.Errorf("repo: --layout %q: want python or ensemble", o.Layout)
	case o.Kind != "gpu" && o.Kind != "cpu":
		return fmt.Errorf("repo: --kind %q: want gpu or cpu", o.Kind)
	case o.Engine == "" && o.ONNX == "":
		return errors.New("repo: give --engine (TensorRT plan) or --onnx")
	case o.Engine == "" && o.Layout == LayoutPython && o.Kind == "gpu":
		return errors.New("repo: the python layout on GPU needs --engine; without one use --kind cpu (ONNX Runtime) or --layout ensemble")
	case o.Layout == LayoutPython && o.Kind == "cpu" && o.ONNX == "":
		return errors.New("repo: CPU instances of the python layout run model.onnx with ONNX Runtime; pass --onnx")
	case o.Layout == LayoutEnsemble && o.Engine != "" && o.Kind == "cpu":
		return errors.New("repo: a tensorrt_plan model runs on GPU instances only; use --kind gpu, or drop --engine to run the ONNX model on the CPU")
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

// gatherFacts reads the width, limits and dtypes from the ONNX graph and the
// engine's build metadata, and refuses settings they contradict.
func gatherFacts(o RepoOptions) (*modelFacts, []string, error) {
	f := &modelFacts{dim: o.Dim, engineType: map[string]string{}}
	var notes []string
	meta, err := convert.ReadEngineMeta(o.Engine)
	if o.Engine != "" && err != nil {
		return nil, nil, err
	}
	if o.Engine == "" {
		meta = nil
	}
	if o.ONNX != "" {
		rep, err := convert.Inspect(o.ONNX)
		if err != nil {
			return nil, nil, fmt.Errorf("inspect %s: %w", o.ONNX, err)
		}
		f.inputs, f.extData = rep.Inputs, rep.ExternalData
		for _, out := range rep.Outputs {
			if len(out.Shape) == 3 && f.hidden == "" {
				f.hidden = out.Name
				if w := out.Shape[2].Value; w > 0 && f.dim == 0 {
					f.dim = int(w)
				}
			}
		}
		if rep.Architecture != nil && rep.Architecture.Hidden > 0 {
			if f.dim != 0 && f.dim != rep.Architecture.Hidden {
				return nil, nil, fmt.Errorf("repo: --dim %d disagrees with the model's hidden size %d", f.dim, rep.Architecture.Hidden)
			}
			f.dim = rep.Architecture.Hidden
		}
		if rep.Architecture != nil && rep.Architecture.MaxPositions > 0 {
			f.maxLength = rep.Architecture.MaxPositions
		}
	}
	if meta != nil {
		if f.dim == 0 {
			f.dim = meta.Hidden
		} else if meta.Hidden > 0 && meta.Hidden != f.dim {
			return nil, nil, fmt.Errorf("repo: engine was built for hidden size %d, the model says %d", meta.Hidden, f.dim)
		}
		f.maxBatch = meta.MaxBatch
		if meta.MaxSeq > 0 && (f.maxLength == 0 || meta.MaxSeq < int64(f.maxLength)) {
			f.maxLength = int(meta.MaxSeq)
		}
		if f.inputs == nil {
			for _, in := range meta.Inputs {
				f.inputs = append(f.inputs, convert.ValueInfo{Name: in.Name, DType: in.ONNXDType, Shape: []convert.Dim{{Param: "batch"}, {Param: "seq"}}})
			}
		}
		for _, in := range meta.Inputs {
			f.engineType[in.Name] = in.DType
		}
		for _, out := range meta.Outputs {
			if f.hidden == "" {
				f.hidden = out.Name
			}
		}
	} else if o.Engine != "" {
		notes = append(notes, "no build metadata next to the engine ("+convert.MetaPath(o.Engine)+"): engine limits unchecked; engine inputs assumed int32 (TensorRT 8.x)")
	}
	if f.dim <= 0 {
		return nil, nil, errors.New("repo: cannot tell the embedding width: pass --onnx or --dim, or build the engine with m3ectl build-engine (it records it)")
	}
	if f.maxLength == 0 {
		f.maxLength = 512
	}
	if o.MaxLength > 0 {
		if o.MaxLength > f.maxLength {
			return nil, nil, fmt.Errorf("repo: max length %d exceeds what the model/engine takes (%d)", o.MaxLength, f.maxLength)
		}
		f.maxLength = o.MaxLength
	}
	if f.maxBatch > 0 && int64(o.MaxBatchSize) > f.maxBatch {
		return nil, nil, fmt.Errorf("repo: --max-batch-size %d exceeds the engine's max profile batch %d; rebuild with a larger --max or lower it", o.MaxBatchSize, f.maxBatch)
	}
	if f.hidden == "" {
		f.hidden = "output"
	}
	if len(f.inputs) == 0 {
		f.inputs = []convert.ValueInfo{{Name: "input_ids", DType: "int64"}, {Name: "attention_mask", DType: "int64"}}
	}
	for _, in := range f.inputs {
		if f.engineType[in.Name] == "" {
			f.engineType[in.Name] = convert.EngineInputDType(convert.TRTVersion{Major: 8, Minor: 6}, in.DType)
		}
	}
	return f, notes, nil
}

// plannedModel is one model folder to write.
type plannedModel struct {
	cfg     *tritonpb.ModelConfig
	version int
	files   map[string]string // version-folder file → source path ("embed:NAME" for our Python files)
	// pyFile is the version-folder Python file to compile-check, "" for none.
	pyFile string
}

type writer struct {
	root string
	res  *RepoResult
}

func (w *writer) model(m *plannedModel) error {
	dir := filepath.Join(w.root, m.cfg.Name)
	vdir := filepath.Join(dir, strconv.Itoa(m.version))
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	text, err := tritonpb.FormatConfig(m.cfg)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.pbtxt")
	if err := os.WriteFile(cfgPath, text, 0o644); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	w.res.Files = append(w.res.Files, cfgPath)
	for _, name := range sortedFileNames(m.files) {
		dst := filepath.Join(vdir, name)
		if err := copyInto(dst, m.files[name]); err != nil {
			return fmt.Errorf("repo: write %s: %w", dst, err)
		}
		w.res.Files = append(w.res.Files, dst)
	}
	return nil
}

func copyInto(dst, src string) error {
	if name, ok := cutPrefix(src, "embed:"); ok {
		b, err := pythonFiles.ReadFile("python/" + name)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
