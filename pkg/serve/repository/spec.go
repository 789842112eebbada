package repository

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/serve/scheduler"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// Default tensor names, the article's: one `text` TYPE_STRING input, one
// `embeddings` TYPE_FP32 output.
const (
	DefaultInputName  = "text"
	DefaultOutputName = "embeddings"
)

// spec is what m3ectl takes from a config.pbtxt: everything that changes how
// the model is served. Fields are documented in interpret.
type spec struct {
	cfg            *tritonpb.ModelConfig
	inputName      string
	outputName     string
	outputDim      int64 // 0: not given ([-1] or absent), filled from the engine
	instances      []instanceSpec
	sched          scheduler.Config
	maxBatchTokens int         // from parameters; 0: server default
	truncate       *bool       // from parameters; nil: server default
	maxLength      int         // from parameters; 0: server default
	files          modelFiles  // from parameters written by m3ectl repo
	layout         *layoutPlan // where an m3ectl layout keeps its parts; nil: in the model's own folder
	graphOptLevel  *int        // from optimization.graph.level
	warmups        []warmupSpec
}

type instanceSpec struct {
	kind   tritonpb.ModelInstanceGroup_Kind
	count  int
	device int
}

// warmupSpec is one model_warmup sample: count runs of a batch of texts.
type warmupSpec struct {
	name  string
	texts []string
	count int
}

// honoured lists the config fields m3ectl acts on. Paths name fields from
// ModelConfig down; a path in honouredTree covers everything below it. Any
// other field that is set is logged as not honoured when the model loads.
var (
	honoured = map[string]bool{
		"name": true, "platform": true, "backend": true, "max_batch_size": true,
		"input.name": true, "input.data_type": true, "input.dims": true,
		"output.name": true, "output.data_type": true, "output.dims": true,
		"instance_group.name": true, "instance_group.count": true,
		"instance_group.kind": true, "instance_group.gpus": true,
		"dynamic_batching.preferred_batch_size":                              true,
		"dynamic_batching.max_queue_delay_microseconds":                      true,
		"dynamic_batching.preserve_ordering":                                 true, // answers are per request: always in order
		"dynamic_batching.default_queue_policy.max_queue_size":               true,
		"dynamic_batching.default_queue_policy.default_timeout_microseconds": true,
		"dynamic_batching.default_queue_policy.timeout_action":               true,
		"optimization.graph.level":                                           true,
	}
	honouredTree = map[string]bool{"version_policy": true, "model_warmup": true, "parameters": true}
)

// Parameters m3ectl reads from the config's parameters map (keys are
// matched case-insensitively).
const (
	ParamMaxBatchTokens = "MAX_BATCH_TOKENS" // padded tokens per execution
	ParamTruncate       = "TRUNCATE"         // "true": cut long texts; "false": reject them
	ParamMaxLength      = "MAX_LENGTH"       // tokens per text, at most the model's window
	// ParamBatchingPolicy picks the batcher: "triton" (the default: wait up
	// to max_queue_delay to fill a batch) or "continuous" (an idle instance
	// takes what is queued at once; scheduler.PolicyContinuous).
	ParamBatchingPolicy = "BATCHING_POLICY"

	// Written by m3ectl repo: the files of the version folder and the
	// preprocessing that Triton's model.py and m3ectl serve both follow.
	ParamONNX      = "ONNX"      // ONNX file in the version folder
	ParamVocab     = "VOCAB"     // vocab.txt or tokenizer.json in the version folder
	ParamPooling   = "POOLING"   // mean, cls or max
	ParamNormalize = "NORMALIZE" // L2-normalise the pooled vector
	ParamLowercase = "LOWERCASE" // BERT lower-casing and accent stripping
	// ParamEngine names the TensorRT plan that Triton's model.py runs;
	// m3ectl serve runs the ONNX model beside it, so it is known, not used.
	ParamEngine = "ENGINE"
)

// modelFiles are the parameters that override what ResolveModel and the
// tokenizer's own config would pick.
type modelFiles struct {
	onnx, vocab string
	pooling     *engine.PoolingMode
	normalize   *bool
	lowercase   *bool
}

// apply points a resolved model at the configured files and pooling.
func (f modelFiles) apply(m *engine.Model, vdir string) {
	if f.onnx != "" {
		m.ONNX = filepath.Join(vdir, f.onnx)
	}
	if f.vocab != "" {
		m.Tokenizer = filepath.Join(vdir, f.vocab)
	}
	if f.pooling != nil {
		m.Pooling.Mode = *f.pooling
	}
	if f.normalize != nil {
		m.Pooling.Normalize = *f.normalize
	}
}

// fileInFolder accepts a plain file name inside the version folder, so a
// config cannot point the server outside the repository.
func fileInFolder(key, val string) (string, error) {
	if val == "" || val != filepath.Base(val) || val == "." || val == ".." {
		return "", fmt.Errorf("parameter %s: %q must be a file name in the version folder", key, val)
	}
	return val, nil
}

// notHonoured walks the config and returns the paths of set fields that
// m3ectl does not act on, plus parameters it does not know, sorted.
func notHonoured(cfg *tritonpb.ModelConfig) []string {
	seen := map[string]bool{}
	var walk func(m protoreflect.Message, prefix string)
	// walkMessage descends into a set sub-message; one set with nothing in
	// it (say `response_cache {}`) is reported itself, unless m3ectl reads
	// fields below it (an empty `dynamic_batching {}` turns batching on).
	walkMessage := func(m protoreflect.Message, path string) {
		empty := true
		m.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool { empty = false; return false })
		if empty {
			if !containerHonoured(path) {
				seen[path] = true
			}
			return
		}
		walk(m, path+".")
	}
	walk = func(m protoreflect.Message, prefix string) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			path := prefix + string(fd.Name())
			switch {
			case honoured[path] || honouredTree[path]:
			case fd.IsMap():
				seen[path] = true
			case fd.Kind() == protoreflect.MessageKind && fd.IsList():
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walkMessage(l.Get(i).Message(), path)
				}
			case fd.Kind() == protoreflect.MessageKind:
				walkMessage(v.Message(), path)
			default:
				seen[path] = true
			}
			return true
		})
	}
	walk(cfg.ProtoReflect(), "")
	for k := range cfg.GetParameters() {
		switch strings.ToUpper(k) {
		case ParamMaxBatchTokens, ParamTruncate, ParamMaxLength, ParamBatchingPolicy,
			ParamONNX, ParamVocab, ParamPooling, ParamNormalize, ParamLowercase, ParamEngine,
			// the rest of what m3ectl repo writes: read by its model.py, or
			// layout wiring m3ectl serve follows (layout.go)
			ParamLayout, paramEncoderModel, "ENCODER_INPUTS", "ENCODER_OUTPUT", "TOKENIZER_SPEC", "PAD_ID",
			"PAD_BUCKETS", "TENSORRT_VERSION", "ENGINE_INPUTS", "ENGINE_OUTPUT":
		default:
			seen["parameters["+k+"]"] = true
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// containerHonoured says whether m3ectl reads some field below path.
func containerHonoured(path string) bool {
	for p := range honoured {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// checkBackend says whether m3ectl can serve a model of this backend or
// platform itself. Python-backend configs (the article's) and ONNX Runtime
// ones are served from the ONNX model in the version folder; TensorRT plans
// and ensembles need a real Triton (m3ectl serve --triton).
func checkBackend(cfg *tritonpb.ModelConfig) error {
	b := strings.ToLower(cfg.GetBackend())
	p := strings.ToLower(cfg.GetPlatform())
	switch {
	case b == "" && p == "", b == "python", b == "onnxruntime", p == "onnxruntime_onnx":
		return nil
	case b == "tensorrt" || p == "tensorrt_plan":
		return fmt.Errorf("backend tensorrt (platform tensorrt_plan) needs TensorRT, which m3ectl serve does not embed: serve the ONNX model, or run the repository with m3ectl serve --triton")
	case p == "ensemble" || cfg.GetEnsembleScheduling() != nil:
		return fmt.Errorf("ensemble models are not served by m3ectl serve: serve the ONNX model, or run the repository with m3ectl serve --triton")
	default:
		return fmt.Errorf("backend %q / platform %q is not served by m3ectl serve (it serves python and onnxruntime_onnx models that have an ONNX model in their version folder)", cfg.GetBackend(), cfg.GetPlatform())
	}
}

// interpret turns a parsed config into a spec, or says what is wrong with
// it. dir is the model folder (for warmup data files).
func interpret(shown *tritonpb.ModelConfig, dir string) (*spec, error) {
	lay, err := resolveLayout(shown, dir)
	if err != nil {
		return nil, err
	}
	cfg := shown // what is followed: the client-facing config, or the layout's effective one
	if lay != nil {
		cfg = lay.effective
	} else if err := checkBackend(cfg); err != nil {
		return nil, err
	}
	sp := &spec{cfg: shown, inputName: DefaultInputName, outputName: DefaultOutputName, layout: lay}
	if cfg.GetMaxBatchSize() < 0 {
		return nil, fmt.Errorf("max_batch_size %d is negative", cfg.GetMaxBatchSize())
	}
	if err := sp.readTensors(cfg); err != nil {
		return nil, err
	}
	total := 0
	for i, g := range cfg.GetInstanceGroup() {
		n := int(g.GetCount())
		if n == 0 {
			n = 1 // Triton's default count
		}
		if n < 0 {
			return nil, fmt.Errorf("instance_group %d: count %d is negative", i, n)
		}
		// Triton places count instances on each GPU the group lists.
		devices := []int32{0}
		if gp := g.GetGpus(); len(gp) > 0 {
			devices = gp
		}
		for _, d := range devices {
			if d < 0 {
				return nil, fmt.Errorf("instance_group %d: gpu %d is negative", i, d)
			}
			sp.instances = append(sp.instances, instanceSpec{kind: g.GetKind(), count: n, device: int(d)})
			total += n
		}
	}
	if len(sp.instances) == 0 {
		sp.instances = []instanceSpec{{kind: tritonpb.ModelInstanceGroup_KIND_AUTO, count: 1}}
	}
	if total > 64 {
		return nil, fmt.Errorf("instance_group asks for %d instances; at most 64 are allowed", total)
	}
	sp.sched = scheduler.Config{Name: cfg.GetName(), MaxBatchSize: int(cfg.GetMaxBatchSize())}
	if db := cfg.GetDynamicBatching(); db != nil {
		sp.sched.Dynamic = true
		sp.sched.MaxQueueDelay = time.Duration(db.GetMaxQueueDelayMicroseconds()) * time.Microsecond
		for _, p := range db.GetPreferredBatchSize() {
			if p <= 0 || (cfg.GetMaxBatchSize() > 0 && p > cfg.GetMaxBatchSize()) {
				return nil, fmt.Errorf("dynamic_batching preferred_batch_size %d is outside 1..max_batch_size (%d)", p, cfg.GetMaxBatchSize())
			}
			sp.sched.PreferredBatchSizes = append(sp.sched.PreferredBatchSizes, int(p))
		}
		if q := db.GetDefaultQueuePolicy(); q != nil {
			sp.sched.MaxQueueRows = int(q.GetMaxQueueSize())
			sp.sched.DefaultTimeout = time.Duration(q.GetDefaultTimeoutMicroseconds()) * time.Microsecond
			if q.GetTimeoutAction() == tritonpb.ModelQueuePolicy_DELAY {
				sp.sched.TimeoutAction = scheduler.Delay
			}
		}
	}
	if err := sp.readParameters(cfg); err != nil {
		return nil, err
	}
	if g := cfg.GetOptimization().GetGraph(); g != nil {
		// Triton's ONNX levels: -1 basic only, 1 basic+extended, 0 default (all).
		lvl := map[int32]int{-1: 1, 0: -1, 1: 2}[g.GetLevel()]
		if g.GetLevel() > 1 {
			lvl = 3
		}
		sp.graphOptLevel = &lvl
	}
	ws, err := readWarmups(cfg, sp.inputName, dir)
	if err != nil {
		return nil, err
	}
	sp.warmups = ws
	return sp, nil
}

// readTensors checks the input and output declarations: one TYPE_STRING
// input of dims [-1] or [1], one TYPE_FP32 output of dims [width] or [-1].
func (sp *spec) readTensors(cfg *tritonpb.ModelConfig) error {
	switch in := cfg.GetInput(); len(in) {
	case 0:
	case 1:
		if in[0].GetName() != "" {
			sp.inputName = in[0].GetName()
		}
		if in[0].GetDataType() != tritonpb.DataType_TYPE_STRING {
			return fmt.Errorf("input %s is %s; m3ectl serves text models whose input is TYPE_STRING", sp.inputName, in[0].GetDataType())
		}
		if d := in[0].GetDims(); len(d) != 1 || (d[0] != -1 && d[0] != 1) {
			return fmt.Errorf("input %s dims %v: expected [ -1 ] or [ 1 ] (one text per batch row)", sp.inputName, d)
		}
	default:
		return fmt.Errorf("the config declares %d inputs; m3ectl serves models with one TYPE_STRING input", len(in))
	}
	switch out := cfg.GetOutput(); len(out) {
	case 0:
	case 1:
		if out[0].GetName() != "" {
			sp.outputName = out[0].GetName()
		}
		if out[0].GetDataType() != tritonpb.DataType_TYPE_FP32 {
			return fmt.Errorf("output %s is %s; m3ectl produces TYPE_FP32 embeddings", sp.outputName, out[0].GetDataType())
		}
		d := out[0].GetDims()
		if len(d) != 1 || d[0] == 0 || d[0] < -1 {
			return fmt.Errorf("output %s dims %v: expected [ width ] (768 for m3e-base)", sp.outputName, d)
		}
		if d[0] > 0 {
			sp.outputDim = d[0]
		}
	default:
		return fmt.Errorf("the config declares %d outputs; m3ectl serves models with one TYPE_FP32 output", len(out))
	}
	return nil
}

func (sp *spec) readParameters(cfg *tritonpb.ModelConfig) error {
	for k, v := range cfg.GetParameters() {
		val := strings.TrimSpace(v.GetStringValue())
		switch strings.ToUpper(k) {
		case ParamMaxBatchTokens, ParamMaxLength:
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return fmt.Errorf("parameter %s: %q is not a positive integer", k, val)
			}
			if strings.ToUpper(k) == ParamMaxLength {
				sp.maxLength = n
			} else {
				sp.maxBatchTokens = n
			}
		case ParamTruncate, ParamNormalize, ParamLowercase:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("parameter %s: %q is not true or false", k, val)
			}
			switch strings.ToUpper(k) {
			case ParamTruncate:
				sp.truncate = &b
			case ParamNormalize:
				sp.files.normalize = &b
			default:
				sp.files.lowercase = &b
			}
		case ParamONNX, ParamVocab:
			name, err := fileInFolder(k, val)
			if err != nil {
				return err
			}
			if strings.ToUpper(k) == ParamONNX {
				sp.files.onnx = name
			} else {
				sp.files.vocab = name
			}
		case ParamBatchingPolicy:
			p, err := scheduler.ParsePolicy(val)
			if err != nil {
				return fmt.Errorf("parameter %s: %w", k, err)
			}
			sp.sched.Policy = p
		case ParamPooling:
			mode, err := engine.ParsePoolingMode(val)
			if err != nil {
				return fmt.Errorf("parameter %s: %w", k, err)
			}
			sp.files.pooling = &mode
		}
	}
	return nil
}

// defaultWarmupText is the sample run through every instance when the
// config has no model_warmup: short Chinese and English, like real traffic.
const defaultWarmupText = "m3e 是一个中文句向量模型 warmup"

// readWarmups reads model_warmup samples. STRING zero_data is the empty
// text and random_data falls back to zero data, as in Triton;
// input_data_file names a file in the model's warmup/ folder holding
// length-prefixed strings. Without samples, one text runs alone and once as
// a full batch, so that every instance has seen both shapes before it is
// ready.
func readWarmups(cfg *tritonpb.ModelConfig, inputName, dir string) ([]warmupSpec, error) {
	maxBatch := max(1, int(cfg.GetMaxBatchSize()))
	if len(cfg.GetModelWarmup()) == 0 {
		full := make([]string, maxBatch)
		for i := range full {
			full[i] = defaultWarmupText
		}
		return []warmupSpec{{name: "default", texts: full[:1], count: 1}, {name: "default-batch", texts: full, count: 1}}, nil
	}
	var out []warmupSpec
	for i, w := range cfg.GetModelWarmup() {
		name := w.GetName()
		if name == "" {
			name = "warmup " + strconv.Itoa(i)
		}
		bs := int(w.GetBatchSize())
		if bs == 0 {
			bs = 1
		}
		if bs > maxBatch {
			return nil, fmt.Errorf("model_warmup %s: batch_size %d exceeds max_batch_size %d", name, bs, maxBatch)
		}
		in, ok := w.GetInputs()[inputName]
		if !ok {
			return nil, fmt.Errorf("model_warmup %s: no data for input %s", name, inputName)
		}
		var pool []string
		switch {
		case in.GetInputDataFile() != "":
			texts, err := readWarmupFile(dir, in.GetInputDataFile())
			if err != nil {
				return nil, fmt.Errorf("model_warmup %s: %w", name, err)
			}
			pool = texts
		case in.GetRandomData():
			pool = []string{randomText()}
		default:
			pool = []string{""}
		}
		texts := make([]string, bs)
		for j := range texts {
			texts[j] = pool[j%len(pool)]
		}
		out = append(out, warmupSpec{name: name, texts: texts, count: max(1, int(w.GetCount()))})
	}
	return out, nil
}

// randomText is a few random lowercase letters (Triton uses zero data for
// random STRING input; a non-empty text exercises more of the model).
func randomText() string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte('a' + rand.IntN(26))
	}
	return string(b)
}
