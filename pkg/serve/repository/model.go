package repository

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
	"github.com/m3ectl/m3ectl/pkg/serve/scheduler"
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// Model is one loaded, ready version of a model: its config and the
// dynamic batcher in front of its engine instances.
type Model struct {
	name, version string
	cfg           *tritonpb.ModelConfig
	dim           int
	inputName     string
	outputName    string
	backend       string
	sched         *scheduler.Scheduler
	metrics       *metrics.Model
	tok           *tokenizer.Tokenizer
	pooling       engine.Pooling
	truncate      bool
	tokens        tokenStates // per-token states for TEI's /embed_all, opened on first use
}

// Result is one request's answer.
type Result struct {
	Embeddings []float32 // len(texts)×Dim, row-major
	Tokens     int       // tokens the texts became, after truncation
	// Text is each text's embedding as JSON numbers, comma-separated and
	// without brackets (engine.Text's form), where InferText got them from
	// the engine; nil, or a nil row, where the caller formats Embeddings.
	Text [][]byte
	// Release, set by InferText, gives Text's memory back to the engine;
	// call it once the answer is written (Text is not read after).
	Release func()
}

// Name is the model's name.
func (m *Model) Name() string { return m.name }

// Version is the model version's folder name ("1" for a --model shortcut).
func (m *Model) Version() string { return m.version }

// Config returns the model's effective config (read from config.pbtxt or
// synthesised, with defaults filled in as Triton's auto-complete does: the
// output's width, input and output names). The caller owns the copy.
func (m *Model) Config() *tritonpb.ModelConfig { return proto.Clone(m.cfg).(*tritonpb.ModelConfig) }

// Dim is the embedding width.
func (m *Model) Dim() int { return m.dim }

// MaxBatchSize is the config's max_batch_size: the most texts one request
// may carry (0: no limit, no batching across requests).
func (m *Model) MaxBatchSize() int { return int(m.cfg.GetMaxBatchSize()) }

// MaxQueueTexts is the most texts the model's queue holds at once
// (max_queue_size, or the default bound): a request with more can never run.
func (m *Model) MaxQueueTexts() int { return m.sched.MaxQueueRows() }

// InputName is the name of the text input ("text" by default).
func (m *Model) InputName() string { return m.inputName }

// OutputName is the name of the embedding output ("embeddings" by default).
func (m *Model) OutputName() string { return m.outputName }

// Backend is the engine the instances run on ("onnxruntime", "cuda", ...).
func (m *Model) Backend() string { return m.backend }

// Infer embeds texts through the model's dynamic batcher. ctx's deadline is
// the request timeout. Errors are *Error.
func (m *Model) Infer(ctx context.Context, texts []string) (*Result, error) {
	emb, tokens, err := m.sched.Infer(ctx, texts)
	if err != nil {
		return nil, err
	}
	return &Result{Embeddings: emb, Tokens: tokens}, nil
}

// InferText is Infer for an answer written as JSON: Result.Text carries
// the rows the engine wrote as text (the CUDA engine writes them on the
// GPU; see scheduler.InferText, also for the floats of such rows, which
// Embeddings may not hold).
func (m *Model) InferText(ctx context.Context, texts []string) (*Result, error) {
	emb, text, release, tokens, err := m.sched.InferText(ctx, texts)
	if err != nil {
		return nil, err
	}
	return &Result{Embeddings: emb, Tokens: tokens, Text: text, Release: release}, nil
}

// Reserve takes queue space for n texts that Infer calls under
// WithReservation(ctx, r) will bring in pieces: all or nothing (see
// scheduler.Reservation). Release the rest when done.
func (m *Model) Reserve(n int) (*scheduler.Reservation, error) { return m.sched.Reserve(n) }

// WithReservation makes the Infer calls under ctx draw on r.
func WithReservation(ctx context.Context, r *scheduler.Reservation) context.Context {
	return scheduler.WithReservation(ctx, r)
}

// Statistics returns the version's cumulative statistics in Triton's form.
func (m *Model) Statistics() *tritonpb.ModelStatistics { return m.sched.Statistics() }

// close drains the model's queue and frees its engines.
func (m *Model) close(ctx context.Context) error {
	err := m.sched.Close(ctx)
	m.tokens.close()
	return err
}

// versionSource is what a version is loaded from.
type versionSource struct {
	name, version string
	modelDir      string // the model folder (tokenizer fallback, warmup files)
	path          string // the version folder, or the --model path
}

// loadVersion opens one version: resolves the model files, loads the
// tokenizer, opens one engine per instance, checks the config against the
// engine, warms every instance up and starts the batcher.
func (mgr *Manager) loadVersion(ctx context.Context, sp *spec, src versionSource) (*Model, error) {
	var em *engine.Model
	var err error
	tokVdir, tokDir := src.path, src.modelDir
	switch {
	case src.path == mgr.cfg.SinglePath && mgr.cfg.SinglePath != "":
		em, err = engine.ResolveModel(src.path)
	case sp.layout != nil && sp.layout.encoderDir != "":
		// An m3ectl layout: the graph is the encoder model's (its
		// onnxruntime_onnx graph, or the ONNX beside its tensorrt_plan).
		var encV string
		if encV, err = newestVersionDir(sp.layout.encoderDir); err == nil {
			em, err = resolveVersion(encV)
		}
		if sp.layout.tokenizerDir != "" {
			tokDir = sp.layout.tokenizerDir
			if tokVdir, err = newestVersionDir(tokDir); err != nil {
				return nil, err
			}
		}
	default:
		em, err = resolveVersion(src.path)
	}
	if err != nil {
		return nil, err
	}
	if sp.layout != nil {
		em.Tokenizer = "" // the vocabulary is the tokenizer model's, not the encoder folder's
	}
	sp.files.apply(em, tokVdir)
	tokPath, err := findTokenizer(em, tokVdir, tokDir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	maxLen := mgr.cfg.MaxLength
	if sp.maxLength > 0 {
		maxLen = sp.maxLength
	}
	if maxLen > 0 {
		tok = tok.WithMaxLength(maxLen)
	}
	if sp.files.lowercase != nil {
		tok = tok.WithLowercase(*sp.files.lowercase)
	}

	mgr.log.Info("loading model", "model", src.name, "version", src.version, "path", src.path)
	engines, err := mgr.openInstances(ctx, sp, em, tok.MaxLength())
	if err != nil {
		return nil, err
	}
	mgr.logInstances(src, sp, engines)
	ok := false
	defer func() {
		if !ok {
			for _, e := range engines {
				_ = e.Close()
			}
		}
	}()
	info := engines[0].Info()
	if sp.outputDim > 0 && int(sp.outputDim) != info.Dim {
		return nil, fmt.Errorf("output %s dims [ %d ] do not match the model's embedding width %d; set dims: [ %d ]", sp.outputName, sp.outputDim, info.Dim, info.Dim)
	}
	if info.MaxSeqLen > 0 && tok.MaxLength() > info.MaxSeqLen {
		tok = tok.WithMaxLength(info.MaxSeqLen)
	}
	if info.VocabSize > 0 && tok.VocabSize() > info.VocabSize {
		return nil, fmt.Errorf("the tokenizer's vocabulary (%d) is larger than the model's embedding table (%d): wrong vocab.txt?", tok.VocabSize(), info.VocabSize)
	}
	warmStart := time.Now()
	for i, e := range engines {
		if err := warmup(ctx, e, tok, sp.warmups); err != nil {
			return nil, fmt.Errorf("warmup of instance %d: %w", i, err)
		}
	}
	mgr.log.Info("model warmed up", "model", src.name, "version", src.version, "instances", len(engines), "samples", warmupSamples(sp.warmups), "took", time.Since(warmStart).Round(time.Millisecond))

	sc := sp.sched
	sc.Name, sc.Version = src.name, src.version
	sc.MaxBatchTokens = mgr.cfg.MaxBatchTokens
	if sp.maxBatchTokens > 0 {
		sc.MaxBatchTokens = sp.maxBatchTokens
	}
	sc.Truncate = mgr.cfg.Truncate
	if sp.truncate != nil {
		sc.Truncate = *sp.truncate
	}
	mm := mgr.metrics.Model(src.name, src.version)
	sc.Metrics = mm
	sc.Logger = mgr.log
	sched, err := scheduler.New(sc, tok, engines)
	if err != nil {
		return nil, err
	}
	ok = true

	cfg := proto.Clone(sp.cfg).(*tritonpb.ModelConfig)
	complete(cfg, sp, info.Dim)
	return &Model{
		name: src.name, version: src.version, cfg: cfg, dim: info.Dim,
		inputName: sp.inputName, outputName: sp.outputName, backend: info.Backend,
		sched: sched, metrics: mm, tok: tok, pooling: info.Pooling, truncate: sc.Truncate,
		tokens: tokenStates{src: em, opts: mgr.cfg.EngineOptions, backend: info.Backend, pooled: info.Pooled},
	}, nil
}

// complete fills the defaults a client reading the config needs, as
// Triton's auto-complete does.
func complete(cfg *tritonpb.ModelConfig, sp *spec, dim int) {
	if len(cfg.Input) == 0 {
		cfg.Input = []*tritonpb.ModelInput{{Name: sp.inputName, DataType: tritonpb.DataType_TYPE_STRING, Dims: []int64{1}}}
	}
	if len(cfg.Output) == 0 {
		cfg.Output = []*tritonpb.ModelOutput{{Name: sp.outputName, DataType: tritonpb.DataType_TYPE_FP32}}
	}
	cfg.Output[0].Dims = []int64{int64(dim)}
	// The batching policy in force, so that a client reading the config of a
	// --model shortcut (continuous by default) sees how it batches.
	for k := range cfg.GetParameters() {
		if strings.EqualFold(k, ParamBatchingPolicy) {
			return
		}
	}
	if sp.sched.Policy == scheduler.PolicyContinuous {
		if cfg.Parameters == nil {
			cfg.Parameters = map[string]*tritonpb.ModelParameter{}
		}
		cfg.Parameters[ParamBatchingPolicy] = &tritonpb.ModelParameter{StringValue: scheduler.PolicyNameContinuous}
	}
}

// openInstances opens one engine per instance. Threads are split across
// the instances so that count×threads does not oversubscribe the CPU.
//
// Which engine an instance runs on (see engineKind): the server's --engine
// when it is "cpu" or "cuda"; under "auto", KIND_CPU means cpu, KIND_GPU
// means cuda when a GPU is usable and else cpu (logged), and KIND_AUTO or
// KIND_MODEL lets engine.Open("auto") pick.
func (mgr *Manager) openInstances(ctx context.Context, sp *spec, em *engine.Model, maxLen int) ([]engine.Engine, error) {
	total := 0
	for _, g := range sp.instances {
		total += g.count
	}
	opts := mgr.cfg.EngineOptions
	threads := opts.Threads
	if threads == 0 && total > 1 {
		threads = runtime.NumCPU()
	}
	if threads > 0 {
		opts.Threads = max(1, threads/total)
	}
	if sp.graphOptLevel != nil && opts.GraphOptLevel <= 0 {
		opts.GraphOptLevel = *sp.graphOptLevel
	}
	rows := max(1, int(sp.cfg.GetMaxBatchSize()))
	opts.MaxBatchRows = rows
	if opts.MaxBatchTokens == 0 {
		opts.MaxBatchTokens = rows * maxLen
	}
	var engines []engine.Engine
	for _, g := range sp.instances {
		kind := mgr.engineKind(g.kind)
		if g.kind == tritonpb.ModelInstanceGroup_KIND_GPU && kind == "cpu" && mgr.cfg.Engine == "cpu" {
			mgr.log.Warn("config asks for KIND_GPU instances but --engine cpu runs them on the CPU; use --engine cuda or auto for the GPU", "model", sp.cfg.GetName(), "count", g.count)
		}
		o := opts
		if g.device > 0 {
			o.Device = g.device
		}
		for i := 0; i < g.count; i++ {
			if err := ctx.Err(); err != nil {
				closeAll(engines)
				return nil, err
			}
			e, err := engine.Open(kind, em, o)
			if err != nil {
				closeAll(engines)
				return nil, fmt.Errorf("instance %d (%s): %w", len(engines), g.kind, err)
			}
			engines = append(engines, e)
		}
	}
	return engines, nil
}

func closeAll(es []engine.Engine) {
	for _, e := range es {
		_ = e.Close()
	}
}

// engineKind maps an instance group's kind to an engine under the server's
// --engine (see openInstances).
func (mgr *Manager) engineKind(k tritonpb.ModelInstanceGroup_Kind) string {
	server := mgr.cfg.Engine
	if server == "" {
		server = "auto"
	}
	if server != "auto" {
		return server
	}
	switch k {
	case tritonpb.ModelInstanceGroup_KIND_CPU:
		return "cpu"
	case tritonpb.ModelInstanceGroup_KIND_GPU:
		if err := engine.Available("cuda"); err != nil {
			mgr.warnOnce("KIND_GPU without a usable GPU: running on cpu", slog.String("reason", err.Error()))
			return "cpu"
		}
		return "cuda"
	default:
		return "auto"
	}
}

// warmup runs the samples through one engine before it serves.
func warmup(ctx context.Context, e engine.Engine, tok *tokenizer.Tokenizer, ws []warmupSpec) error {
	b := &engine.Batch{}
	for _, w := range ws {
		b.Reset()
		for _, t := range w.texts {
			b.Append(tok.Encode(t))
		}
		for i := 0; i < w.count; i++ {
			emb, err := e.Embed(ctx, b)
			if err != nil {
				return fmt.Errorf("sample %s: %w", w.name, err)
			}
			if len(emb) != b.Rows()*e.Info().Dim {
				return fmt.Errorf("sample %s: engine returned %d floats for %d rows", w.name, len(emb), b.Rows())
			}
		}
	}
	return nil
}

// singleSpec synthesises the config of a --model shortcut: the article's
// shape (max_batch_size 32, text → embeddings), one instance, dynamic
// batching with no extra delay (a batch forms from whatever arrived while
// the instance was busy, so a lone request is not held back).
func singleSpec(name string) (*spec, error) {
	cfg := &tritonpb.ModelConfig{
		Name:         name,
		Backend:      "onnxruntime",
		MaxBatchSize: 32,
		Input:        []*tritonpb.ModelInput{{Name: DefaultInputName, DataType: tritonpb.DataType_TYPE_STRING, Dims: []int64{-1}}},
		Output:       []*tritonpb.ModelOutput{{Name: DefaultOutputName, DataType: tritonpb.DataType_TYPE_FP32, Dims: []int64{-1}}},
		InstanceGroup: []*tritonpb.ModelInstanceGroup{{
			Count: 1, Kind: tritonpb.ModelInstanceGroup_KIND_AUTO,
		}},
		SchedulingChoice: &tritonpb.ModelConfig_DynamicBatching{DynamicBatching: &tritonpb.ModelDynamicBatching{}},
	}
	return interpret(cfg, "")
}
