// Package onnxrt is the CPU engine: a BERT encoder exported to ONNX, run by
// ONNX Runtime through github.com/yalue/onnxruntime_go, then pooled and
// normalised in Go. It registers itself as engine backend "cpu" (alias
// "onnxruntime"); a blank import is all a binary needs.
package onnxrt

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

func init() {
	engine.RegisterBackend("cpu", Open, nil)
	engine.RegisterBackend("onnxruntime", Open, nil)
}

// inputRole is what the engine feeds to one graph input.
type inputRole int

const (
	roleIDs   inputRole = iota // token ids
	roleMask                   // attention mask: 1 for real tokens, 0 for padding
	roleTypes                  // token type ids: all 0 for one sentence
)

type input struct {
	name  string
	role  inputRole
	int32 bool // the graph takes int32 rather than int64
}

// Engine runs one ONNX Runtime session. Like every engine.Engine it is used by
// one goroutine at a time, which lets it reuse its buffers across batches.
type Engine struct {
	path   string
	sess   *ort.DynamicAdvancedSession
	run    *ort.RunOptions
	inputs []input
	output string
	pooled bool // the graph's output is already the sentence embedding
	info   engine.Info
	// attentionBudget and tokenBudget bound one Run (see parts); fields so
	// that benchmarks can compare budgets.
	attentionBudget, tokenBudget int

	ids64, mask64, zero64 []int64
	ids32, mask32, zero32 []int32
	states                []float32
}

var _ engine.Engine = (*Engine)(nil)

// Open loads m.ONNX into an ONNX Runtime session with the options' threads,
// graph optimisation level and execution provider.
func Open(m *engine.Model, o engine.Options) (engine.Engine, error) {
	return OpenEngine(m, o)
}

// OpenEngine is Open with the concrete type, for tests and benchmarks.
func OpenEngine(m *engine.Model, o engine.Options) (*Engine, error) {
	if m.ONNX == "" {
		// A Hugging Face folder with only its checkpoint: export it (once,
		// cached) as `m3ectl export` would.
		path, err := convert.AutoExport(m, slog.Default())
		if err != nil {
			return nil, err
		}
		c := *m
		c.ONNX = path
		m = &c
	}
	if err := Init(o.ORTLib); err != nil {
		return nil, err
	}
	e := &Engine{path: m.ONNX, attentionBudget: attentionBudget, tokenBudget: tokenBudget}
	if p := strings.ToLower(o.Provider); p != "" && p != "cpu" {
		// A GPU provider wants the whole batch in one Run, and its memory
		// is the device's, not the server's RSS.
		e.attentionBudget, e.tokenBudget = math.MaxInt, math.MaxInt
	}
	opts, err := sessionOptions(o)
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	// pkg/convert reads the graph once (memory-mapped, weights skipped) for
	// the signatures and the embedding tables' sizes.
	report, inspectErr := convert.Inspect(m.ONNX)
	if inspectErr != nil {
		report = nil
		slog.Debug("inspect failed; asking ONNX Runtime", "model", m.ONNX, "err", inspectErr)
	}
	ins, outs, err := signatures(m.ONNX, report)
	if err != nil {
		return nil, err
	}
	if err := e.pickInputs(ins); err != nil {
		return nil, err
	}
	hidden, err := e.pickOutput(outs)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(e.inputs))
	for i, in := range e.inputs {
		names[i] = in.name
	}
	e.sess, err = ort.NewDynamicAdvancedSession(m.ONNX, names, []string{e.output}, opts)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", m.ONNX, trimORT(err))
	}
	if e.run, err = ort.NewRunOptions(); err != nil {
		e.Close()
		return nil, fmt.Errorf("onnxruntime run options: %w", err)
	}
	e.info = engine.Info{Backend: "onnxruntime", Dim: hidden, Pooling: m.Pooling, Pooled: e.pooled}
	if e.pooled {
		slog.Debug("the graph pools itself; no pooling in the engine", "model", m.ONNX, "output", e.output)
	}
	if err := e.readArchitecture(m, report); err != nil {
		e.Close()
		return nil, err
	}
	if e.info.Dim <= 0 {
		// The output's width is symbolic: learn it from one tiny run.
		if e.info.Dim, err = e.probeDim(); err != nil {
			e.Close()
			return nil, fmt.Errorf("%s: %w", m.ONNX, err)
		}
	}
	if m.Dim > 0 && m.Dim != e.info.Dim {
		e.Close()
		return nil, fmt.Errorf("%s: the model's output is %d wide but its pooling config says %d", m.ONNX, e.info.Dim, m.Dim)
	}
	return e, nil
}

func sessionOptions(o engine.Options) (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnxruntime session options: %w", err)
	}
	fail := func(what string, err error) (*ort.SessionOptions, error) {
		opts.Destroy()
		return nil, fmt.Errorf("onnxruntime %s: %w", what, err)
	}
	if o.Threads > 0 {
		if err := opts.SetIntraOpNumThreads(o.Threads); err != nil {
			return fail("intra-op threads", err)
		}
	}
	if o.InterOpThreads > 0 {
		if err := opts.SetInterOpNumThreads(o.InterOpThreads); err != nil {
			return fail("inter-op threads", err)
		}
	}
	if lvl, ok := graphOptLevel(o.GraphOptLevel); ok {
		if err := opts.SetGraphOptimizationLevel(lvl); err != nil {
			return fail("graph optimisation level", err)
		}
	}
	if err := appendProvider(opts, o); err != nil {
		opts.Destroy()
		return nil, err
	}
	return opts, nil
}

// graphOptLevel maps Options.GraphOptLevel to ONNX Runtime's levels:
// engine.GraphOptDisabled disables, 1 basic, 2 extended, 3 all; 0 and -1 keep
// the default (all), so zero-valued Options never run an unoptimised graph.
func graphOptLevel(l int) (ort.GraphOptimizationLevel, bool) {
	switch {
	case l == engine.GraphOptDisabled:
		return ort.GraphOptimizationLevelDisableAll, true
	case l <= 0:
		return 0, false
	case l == 1:
		return ort.GraphOptimizationLevelEnableBasic, true
	case l == 2:
		return ort.GraphOptimizationLevelEnableExtended, true
	default:
		return ort.GraphOptimizationLevelEnableAll, true
	}
}

// appendProvider adds the CUDA or TensorRT execution provider. The library
// set up by scripts/setup-ort.sh is CPU-only, so here this returns an error
// that says so; a GPU build of ONNX Runtime 1.24 would accept it (not run in
// this project's CI).
func appendProvider(opts *ort.SessionOptions, o engine.Options) error {
	dev := fmt.Sprint(o.Device)
	switch strings.ToLower(o.Provider) {
	case "", "cpu":
		return nil
	case "cuda":
		c, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return providerErr("CUDA", err)
		}
		defer c.Destroy()
		if err := c.Update(map[string]string{"device_id": dev}); err != nil {
			return providerErr("CUDA", err)
		}
		if err := opts.AppendExecutionProviderCUDA(c); err != nil {
			return providerErr("CUDA", err)
		}
		return nil
	case "tensorrt":
		t, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return providerErr("TensorRT", err)
		}
		defer t.Destroy()
		set := map[string]string{"device_id": dev}
		if o.Precision == "fp16" {
			set["trt_fp16_enable"] = "1"
		}
		if err := t.Update(set); err != nil {
			return providerErr("TensorRT", err)
		}
		if err := opts.AppendExecutionProviderTensorRT(t); err != nil {
			return providerErr("TensorRT", err)
		}
		return nil
	default:
		return fmt.Errorf("unknown ONNX Runtime execution provider %q (cpu, cuda, tensorrt)", o.Provider)
	}
}

func providerErr(name string, err error) error {
	// ONNX Runtime prefixes its source location; the cause follows "FAIL : ".
	if msg := err.Error(); strings.Contains(msg, "FAIL : ") {
		err = errors.New(msg[strings.LastIndex(msg, "FAIL : ")+len("FAIL : "):])
	}
	return fmt.Errorf("ONNX Runtime (%s) cannot use the %s execution provider; it needs a GPU build of ONNX Runtime with its provider libraries: %w", LoadedLibrary(), name, err)
}

// trimORT shortens ONNX Runtime's wrapped messages to their cause.
func trimORT(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
