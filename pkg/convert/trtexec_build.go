package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// BuildRequest is what `m3ectl build-engine` asks for.
type BuildRequest struct {
	ONNX, Engine  string
	Min, Opt, Max string // "BxS" or "name:BxS,..."
	FP16, INT8    bool
	// StronglyTyped builds the ONNX's own precisions (TensorRT 10's
	// --stronglyTyped; what 11 always does).
	StronglyTyped bool
	// Pooling ("mean", "cls", "max"; "" for none) builds from the ONNX with
	// the pooling head added, so the engine outputs sentence embeddings;
	// Normalize adds the L2 normalisation.
	Pooling      string
	Normalize    bool
	TRTVersion   string // for a dry run without trtexec: the version to write flags for ("" = the newest)
	WorkspaceMiB int
	TimingCache  string
	OptLevel     int // -1: trtexec's default
	Trtexec      string
	Extra        []string // passed to trtexec after ours
	DryRun       bool
	Progress     Progress
}

// BuildResult describes a planned (dry run) or finished build.
type BuildResult struct {
	Command   []string      `json:"command"`
	Shell     string        `json:"shell"`
	TensorRT  string        `json:"tensorrt"`
	Profile   *ShapeProfile `json:"profile"`
	Notes     []string      `json:"notes,omitempty"`
	DryRun    bool          `json:"dry_run"`
	Engine    string        `json:"engine,omitempty"`
	Bytes     int64         `json:"bytes,omitempty"`
	LogPath   string        `json:"log,omitempty"`
	MetaPath  string        `json:"meta,omitempty"`
	ElapsedMS int64         `json:"elapsed_ms,omitempty"`
	// BuiltFrom is the ONNX trtexec read when it is not the one given: the
	// pooling-head and/or fp16 AutoCast rewrite written next to the engine.
	BuiltFrom string `json:"built_from,omitempty"`
}

// assumedVersion is used for a dry run when no trtexec can be found: the
// newest TensorRT, which Triton 26.06 and later ship.
var assumedVersion = TRTVersion{11, 1, 0}

// RewrittenONNX is where build-engine writes the ONNX it builds from when it
// rewrites the given one (pooling head, fp16 AutoCast): next to the engine.
func RewrittenONNX(engine string, pooled, fp16 bool) string {
	suffix := ""
	if pooled {
		suffix += ".pooled"
	}
	if fp16 {
		suffix += ".fp16"
	}
	return engine + suffix + ".onnx"
}

// BuildEngine checks the request against the ONNX graph, picks trtexec's
// flags for the installed TensorRT, runs it and records the engine's
// metadata next to it. Refusals (*ProfileError) happen before anything runs.
func BuildEngine(ctx context.Context, req BuildRequest) (*BuildResult, error) {
	rep, err := Inspect(req.ONNX)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", req.ONNX, err)
	}
	prof, err := ProfileFromArgs(rep, req.Min, req.Opt, req.Max)
	if err != nil {
		return nil, err
	}
	if req.Engine == "" {
		return nil, errors.New("no --engine output path")
	}
	res := &BuildResult{Profile: prof, DryRun: req.DryRun, Engine: absPath(req.Engine)}
	if st, err := os.Stat(filepath.Dir(res.Engine)); !req.DryRun && (err != nil || !st.IsDir()) {
		return nil, fmt.Errorf("engine folder %s does not exist", filepath.Dir(res.Engine))
	}
	trtexec, err := FindTrtexec(req.Trtexec)
	var ver TRTVersion
	switch {
	case err == nil:
		if ver, err = ProbeVersion(ctx, trtexec); err != nil {
			return nil, err
		}
	case req.DryRun && errors.Is(err, ErrTrtexecNotFound):
		trtexec, ver = "trtexec", assumedVersion
		if req.TRTVersion != "" {
			if ver, err = ParseTRTVersion(req.TRTVersion); err != nil {
				return nil, err
			}
			res.Notes = append(res.Notes, "trtexec not found; flags chosen for TensorRT "+ver.String()+" (--trt-version)")
		} else {
			res.Notes = append(res.Notes, "trtexec not found; flags chosen for TensorRT "+ver.String()+", the newest (pass --trt-version to write them for another)")
		}
	default:
		return nil, err
	}
	res.TensorRT = ver.String()
	if ver.AtLeast(11, 0) && req.INT8 {
		return nil, fmt.Errorf("--int8: %w: its trtexec has no --int8 (samples/common/sampleOptions.cpp@v11.0, BuildOptions::parse); quantise the ONNX with Q/DQ nodes (NVIDIA ModelOpt) and build it without --int8", ErrStronglyTypedOnly)
	}
	// TensorRT 11 takes precision from the ONNX: --fp16 means AutoCast first.
	autocast := req.FP16 && ver.AtLeast(11, 0)
	src := req.ONNX
	if autocast || req.Pooling != "" {
		src = RewrittenONNX(res.Engine, req.Pooling != "", autocast)
		res.BuiltFrom = src
		what := "pooling head (" + req.Pooling + ")"
		switch {
		case autocast && req.Pooling != "":
			what += " and fp16 AutoCast"
		case autocast:
			what = "fp16 AutoCast"
		}
		if autocast {
			res.Notes = append(res.Notes, "TensorRT "+ver.String()+" is strongly typed: --fp16 builds from "+src+", the fp16 AutoCast of "+req.ONNX+" (LayerNorm, Softmax and pooling in fp32), with no precision flag")
		}
		if req.DryRun {
			res.Notes = append(res.Notes, "would write "+src+" first: "+what)
		} else {
			conv, err := Convert(req.ONNX, src, ConvertOptions{Pooling: req.Pooling, Normalize: req.Normalize, FP16: autocast})
			if err != nil {
				return nil, err
			}
			rep = conv.Report
		}
	}
	if note := Int64Note(ver, prof); note != "" {
		res.Notes = append(res.Notes, note)
	}
	if req.INT8 {
		res.Notes = append(res.Notes, "--int8 without a calibration cache: trtexec uses placeholder scales, fit for speed tests, not for accuracy")
	}
	args, err := BuildArgs(BuildOptions{
		ONNX: absPath(src), Engine: res.Engine, Profile: prof,
		FP16: req.FP16 && !autocast, INT8: req.INT8, StronglyTyped: req.StronglyTyped, WorkspaceMiB: req.WorkspaceMiB,
		TimingCache: absPath(req.TimingCache), OptLevel: req.OptLevel, Extra: req.Extra, Version: ver,
	})
	if err != nil {
		return nil, err
	}
	res.Command = append([]string{trtexec}, args...)
	res.Shell = ShellQuote(res.Command)
	if req.DryRun {
		return res, nil
	}

	res.LogPath = res.Engine + ".log"
	_ = os.Remove(res.Engine) // a stale engine must not pass for a new one
	run, err := RunTrtexec(ctx, trtexec, args, res.LogPath, req.Progress)
	if err != nil {
		return nil, err
	}
	res.ElapsedMS = run.Elapsed.Milliseconds()
	if err := run.Failure("build"); err != nil {
		return nil, err
	}
	st, err := os.Stat(res.Engine)
	if err != nil || st.Size() == 0 {
		return nil, &TrtexecError{Op: "build", Reason: "it reported PASSED but wrote no engine to " + res.Engine, LogPath: res.LogPath}
	}
	res.Bytes = st.Size()
	meta := NewEngineMeta(rep, prof, ver, req)
	meta.ONNX, meta.SourceONNX = absPath(src), absPath(req.ONNX)
	meta.StronglyTyped = ver.AtLeast(11, 0) || req.StronglyTyped
	meta.Pooling, meta.Normalize = req.Pooling, req.Normalize && req.Pooling != ""
	res.MetaPath = MetaPath(res.Engine)
	if err := WriteEngineMeta(res.MetaPath, meta); err != nil {
		return nil, err
	}
	return res, nil
}

// ProfileFromArgs parses --min/--opt/--max and checks them against the graph.
func ProfileFromArgs(rep *Report, min, opt, max string) (*ShapeProfile, error) {
	var args [3]ShapeArg
	for i, s := range []string{min, opt, max} {
		a, err := ParseShapeArg(s)
		if err != nil {
			return nil, err
		}
		args[i] = a
	}
	maxPos := 0
	if rep.Architecture != nil {
		maxPos = rep.Architecture.MaxPositions
	}
	return NewShapeProfile(rep.Inputs, args[0], args[1], args[2], maxPos)
}

// EngineMeta is the sidecar JSON written next to an engine (OUT.plan.meta.json)
// so that verify-engine, repo and serve know its profile and the dtypes it
// takes without TensorRT at hand.
type EngineMeta struct {
	TensorRT string `json:"tensorrt"`
	ONNX     string `json:"onnx"` // the graph the engine was built from
	// SourceONNX is the graph given to build-engine, when ONNX is its
	// rewrite (pooling head, fp16 AutoCast).
	SourceONNX string `json:"source_onnx,omitempty"`
	// StronglyTyped: precisions come from the ONNX (TensorRT 11, or 10's --stronglyTyped).
	StronglyTyped bool `json:"strongly_typed,omitempty"`
	// Pooled: the engine's output is the sentence embedding, embeddings [N, dim] fp32.
	Pooled bool `json:"pooled,omitempty"`
	// Pooling and Normalize are the head build-engine --pooling added.
	Pooling      string         `json:"pooling,omitempty"`
	Normalize    bool           `json:"normalize,omitempty"`
	Precision    []string       `json:"precision"`
	Inputs       []EngineTensor `json:"inputs"`
	Outputs      []EngineTensor `json:"outputs"`
	Hidden       int            `json:"hidden,omitempty"`
	MaxPositions int            `json:"max_positions,omitempty"`
	MaxBatch     int64          `json:"max_batch"`
	MaxSeq       int64          `json:"max_seq"`
	BuiltAt      time.Time      `json:"built_at"`
}

// EngineTensor is one engine input or output: the ONNX dtype and the dtype
// the engine itself uses.
type EngineTensor struct {
	Name      string  `json:"name"`
	ONNXDType string  `json:"onnx_dtype"`
	DType     string  `json:"dtype"`
	Min       []int64 `json:"min,omitempty"`
	Opt       []int64 `json:"opt,omitempty"`
	Max       []int64 `json:"max,omitempty"`
	// Dims is an output's shape, -1 where dynamic ([-1, 768] for embeddings).
	Dims []int64 `json:"dims,omitempty"`
}

// NewEngineMeta records what a build made.
func NewEngineMeta(rep *Report, prof *ShapeProfile, ver TRTVersion, req BuildRequest) *EngineMeta {
	m := &EngineMeta{TensorRT: ver.String(), ONNX: absPath(req.ONNX), Precision: []string{"fp32"},
		MaxBatch: prof.MaxBatch(), MaxSeq: prof.MaxSeq(), BuiltAt: time.Now().UTC().Truncate(time.Second)}
	if req.FP16 {
		m.Precision = append(m.Precision, "fp16")
	}
	if req.INT8 {
		m.Precision = append(m.Precision, "int8")
	}
	if rep.Architecture != nil {
		m.Hidden, m.MaxPositions = rep.Architecture.Hidden, rep.Architecture.MaxPositions
	}
	for _, in := range prof.Inputs {
		m.Inputs = append(m.Inputs, EngineTensor{Name: in.Name, ONNXDType: in.DType, DType: EngineInputDType(ver, in.DType), Min: in.Min, Opt: in.Opt, Max: in.Max})
	}
	for _, out := range rep.Outputs {
		dims := make([]int64, len(out.Shape))
		for i, d := range out.Shape {
			dims[i] = -1
			if d.Known() {
				dims[i] = d.Value
			}
		}
		m.Outputs = append(m.Outputs, EngineTensor{Name: out.Name, ONNXDType: out.DType, DType: EngineInputDType(ver, out.DType), Dims: dims})
	}
	_, m.Pooled = rep.Embeddings()
	return m
}

// MetaPath is where the sidecar of engine lives.
func MetaPath(engine string) string { return engine + ".meta.json" }

// WriteEngineMeta writes m as indented JSON.
func WriteEngineMeta(path string, m *EngineMeta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode engine metadata: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write engine metadata: %w", err)
	}
	return nil
}

// ReadEngineMeta reads the sidecar of engine; it returns (nil, nil) when
// there is none (an engine built by hand).
func ReadEngineMeta(engine string) (*EngineMeta, error) {
	b, err := os.ReadFile(MetaPath(engine))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read engine metadata: %w", err)
	}
	var m EngineMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", MetaPath(engine), err)
	}
	return &m, nil
}

// InputDType is the engine's dtype for the named input, "" when unknown.
func (m *EngineMeta) InputDType(name string) string {
	if m == nil {
		return ""
	}
	for _, in := range m.Inputs {
		if in.Name == name {
			return in.DType
		}
	}
	return ""
}
