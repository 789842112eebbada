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
	WorkspaceMiB  int
	TimingCache   string
	OptLevel      int // -1: trtexec's default
	Trtexec       string
	Extra         []string // passed to trtexec after ours
	DryRun        bool
	Progress      Progress
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
}

// assumedVersion is used for a dry run when no trtexec can be found.
var assumedVersion = TRTVersion{10, 0, 0}

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
		res.Notes = append(res.Notes, "trtexec not found; flags chosen for TensorRT "+ver.String())
	default:
		return nil, err
	}
	res.TensorRT = ver.String()
	if note := Int64Note(ver, prof); note != "" {
		res.Notes = append(res.Notes, note)
	}
	if req.INT8 {
		res.Notes = append(res.Notes, "--int8 without a calibration cache: trtexec uses placeholder scales, fit for speed tests, not for accuracy")
	}
	args, err := BuildArgs(BuildOptions{
		ONNX: absPath(req.ONNX), Engine: res.Engine, Profile: prof,
		FP16: req.FP16, INT8: req.INT8, WorkspaceMiB: req.WorkspaceMiB,
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
	TensorRT     string         `json:"tensorrt"`
	ONNX         string         `json:"onnx"`
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
		m.Outputs = append(m.Outputs, EngineTensor{Name: out.Name, ONNXDType: out.DType, DType: EngineInputDType(ver, out.DType)})
	}
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
