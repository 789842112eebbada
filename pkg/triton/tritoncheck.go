package triton

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// checkPlan applies to the planned configs the rules Triton core applies
// when it loads them, and the ones it applies at run time to the requests
// the bls model sends. Each rule names its source: triton-inference-server
// core@r26.06, src/model_config_utils.cc (ValidateModelConfig,
// ValidateIOShape, ValidateEnsembleSchedulingConfig) and
// src/ensemble_scheduler/ensemble_utils.cc (ValidateEnsembleConfig,
// ValidateTensorConsistency), plus backend_model_instance.cc for warmup.
func checkPlan(plan []*plannedModel) []string {
	models := map[string]*tritonpb.ModelConfig{}
	var p []string
	for _, m := range plan {
		if models[m.cfg.Name] != nil {
			p = append(p, "two models are named "+m.cfg.Name)
		}
		models[m.cfg.Name] = m.cfg
	}
	for _, m := range plan {
		p = append(p, checkModel(m.cfg)...)
	}
	for _, m := range plan {
		c := m.cfg
		if es := c.GetEnsembleScheduling(); es != nil {
			p = append(p, checkEnsemble(c, es, models)...)
		}
		if param(c, ParamLayout) == RoleBLS {
			p = append(p, checkBLS(c, models)...)
		}
	}
	return p
}

func param(c *tritonpb.ModelConfig, key string) string {
	return c.GetParameters()[key].GetStringValue()
}

// checkModel is ValidateModelConfig for one config.
func checkModel(c *tritonpb.ModelConfig) []string {
	var p []string
	bad := func(f string, a ...any) { p = append(p, c.Name+": "+fmt.Sprintf(f, a...)) }
	if c.Name == "" {
		return []string{"model configuration must specify 'name'"}
	}
	switch {
	case c.Platform == "ensemble" && c.Backend != "":
		bad("unexpected 'platform' and 'backend' pair, got:%s, %s", c.Platform, c.Backend)
	case c.Platform == "" && c.Backend == "":
		bad("must specify 'platform' or 'backend'")
	case c.Platform != "" && c.Platform != "ensemble" && c.Platform != "tensorrt_plan" && c.Platform != "onnxruntime_onnx":
		bad("unexpected platform type '%s'", c.Platform)
	}
	if c.MaxBatchSize < 0 {
		bad("'max_batch_size' must be non-negative value")
	}
	if db := c.GetDynamicBatching(); db != nil {
		for _, s := range db.PreferredBatchSize {
			if s <= 0 {
				bad("dynamic batching preferred size must be positive")
			} else if s > c.MaxBatchSize {
				bad("dynamic batching preferred size must be <= max batch size")
			}
		}
	}
	seen := map[string]bool{}
	for _, in := range c.Input {
		p = append(p, checkIO(c.Name, "input", in.Name, in.DataType, in.Dims)...)
		if seen[in.Name] {
			bad("input '%s' is declared twice", in.Name)
		}
		seen[in.Name] = true
	}
	for _, out := range c.Output {
		p = append(p, checkIO(c.Name, "output", out.Name, out.DataType, out.Dims)...)
	}
	if c.Platform == "ensemble" {
		// ValidateEnsembleSchedulingConfig: no instance groups, optimization or warmup.
		if len(c.InstanceGroup) > 0 {
			bad("instance group should not be specified for ensemble")
		}
		if c.Optimization != nil {
			bad("optimization should not be specified for ensemble")
		}
		if len(c.ModelWarmup) > 0 {
			bad("model_warmup can not be specified for ensemble")
		}
		if c.GetEnsembleScheduling() == nil {
			bad("ensemble scheduling must be set for ensemble")
		}
		return p
	}
	if c.GetEnsembleScheduling() != nil {
		bad("ensemble scheduling cannot be set for model whose platform is not ensemble")
	}
	if len(c.InstanceGroup) == 0 {
		bad("must specify one or more 'instance group's")
	}
	for _, g := range c.InstanceGroup {
		if c.Platform == "tensorrt_plan" && g.Kind != tritonpb.ModelInstanceGroup_KIND_GPU {
			bad("instance group has kind %s; the TensorRT backend runs KIND_GPU only", g.Kind)
		}
		if g.Count < 1 {
			bad("instance group count %d must be at least 1", g.Count)
		}
	}
	p = append(p, checkWarmup(c)...)
	return p
}

// checkIO is ValidateIOShape: a name, a data type, and dims each >= 1 or -1.
func checkIO(model, kind, name string, dt tritonpb.DataType, dims []int64) []string {
	var p []string
	prefix := fmt.Sprintf("%s: model %s ", model, kind)
	if name == "" {
		return []string{prefix + "must specify 'name'"}
	}
	if dt == tritonpb.DataType_TYPE_INVALID {
		p = append(p, prefix+"'"+name+"' must specify 'data_type'")
	}
	if len(dims) == 0 {
		p = append(p, prefix+"'"+name+"' must specify 'dims'")
	}
	for _, d := range dims {
		if d < 1 && d != -1 {
			p = append(p, fmt.Sprintf("%s'%s' dimension must be integer >= 1, or -1 to indicate a variable-size dimension", prefix, name))
		}
	}
	return p
}

// checkWarmup follows backend_model_instance.cc@r26.06 (warmup samples are
// built as batch_size requests of the declared inputs): the batch must fit
// max_batch_size, every input must be a model input with its data type and
// dims the model accepts, and every model input must be given.
func checkWarmup(c *tritonpb.ModelConfig) []string {
	var p []string
	inputs := map[string]*tritonpb.ModelInput{}
	for _, in := range c.Input {
		inputs[in.Name] = in
	}
	for _, w := range c.ModelWarmup {
		if c.MaxBatchSize > 0 && int32(w.BatchSize) > c.MaxBatchSize {
			p = append(p, fmt.Sprintf("%s: model_warmup %s: batch_size %d exceeds max_batch_size %d", c.Name, w.Name, w.BatchSize, c.MaxBatchSize))
		}
		for name, wi := range w.Inputs {
			in := inputs[name]
			if in == nil {
				p = append(p, fmt.Sprintf("%s: model_warmup %s: unexpected inference input '%s'", c.Name, w.Name, name))
				continue
			}
			if wi.DataType != in.DataType {
				p = append(p, fmt.Sprintf("%s: model_warmup %s: input %s is %s, the model takes %s", c.Name, w.Name, name, wi.DataType, in.DataType))
			}
			if !dimsMatch(in.Dims, wi.Dims) {
				p = append(p, fmt.Sprintf("%s: model_warmup %s: input %s dims %v do not fit %v", c.Name, w.Name, name, wi.Dims, in.Dims))
			}
		}
		for name := range inputs {
			if w.Inputs[name] == nil {
				p = append(p, fmt.Sprintf("%s: model_warmup %s gives no data for input %s", c.Name, w.Name, name))
			}
		}
	}
	return p
}

// dimsMatch is CompareDimsWithWildcard: equal rank, -1 matches anything.
func dimsMatch(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && a[i] != -1 && b[i] != -1 {
			return false
		}
	}
	return true
}

// tensorNode is one ensemble tensor: its type and dims as one model infers them.
type tensorNode struct {
	model string
	dt    tritonpb.DataType
	dims  []int64
}

// checkEnsemble is ValidateEnsembleSchedulingConfig plus ValidateEnsembleConfig.
func checkEnsemble(c *tritonpb.ModelConfig, es *tritonpb.ModelEnsembling, models map[string]*tritonpb.ModelConfig) []string {
	var p []string
	bad := func(f string, a ...any) { p = append(p, "in ensemble "+c.Name+", "+fmt.Sprintf(f, a...)) }
	if len(es.Step) == 0 {
		return []string{"must specify 'step' for ensemble '" + c.Name + "'"}
	}
	tensors := map[string]tensorNode{}
	for _, in := range c.Input {
		tensors[in.Name] = tensorNode{c.Name, in.DataType, in.Dims}
	}
	used, written := map[string]bool{}, map[string]bool{}
	consistent := func(tensor string, n tensorNode) {
		if prev, ok := tensors[tensor]; ok {
			if prev.dt != n.dt {
				bad("tensor %s: inconsistent data type: %s is inferred from model %s while %s is inferred from model %s", tensor, prev.dt, prev.model, n.dt, n.model)
			} else if !dimsMatch(prev.dims, n.dims) {
				bad("tensor %s: inconsistent shape: %v is inferred from model %s while %v is inferred from model %s", tensor, prev.dims, prev.model, n.dims, n.model)
			}
			return
		}
		tensors[tensor] = n
	}
	for i, st := range es.Step {
		m := models[st.ModelName]
		switch {
		case st.ModelName == "":
			bad("must specify 'model_name' in step %d", i)
			continue
		case len(st.InputMap) == 0:
			bad("must specify 'input_map' in step %d", i)
		case len(st.OutputMap) == 0:
			bad("must specify 'output_map' in step %d", i)
		case m == nil:
			bad("step %d: model %s is not in the repository", i, st.ModelName)
			continue
		}
		if m.MaxBatchSize != 0 && m.MaxBatchSize < c.MaxBatchSize {
			bad("ensemble %s allows maximum batch size %d, but it contains model %s which only allows maximum batch size to be %d", c.Name, c.MaxBatchSize, st.ModelName, m.MaxBatchSize)
		}
		mapped := map[string]int{}
		for _, key := range sortedKeys(st.InputMap) {
			tensor := st.InputMap[key]
			var in *tritonpb.ModelInput
			for _, x := range m.Input {
				if x.Name == key {
					in = x
				}
			}
			if in == nil {
				bad("ensemble tensor %s is mapping to non-existing input %s in model %s", tensor, key, st.ModelName)
				continue
			}
			mapped[key]++
			used[tensor] = true
			if _, ok := tensors[tensor]; !ok {
				bad("ensemble tensor %s is read by model %s before any step writes it", tensor, st.ModelName)
			}
			consistent(tensor, tensorNode{st.ModelName, in.DataType, in.Dims})
		}
		for _, in := range m.Input {
			if mapped[in.Name] == 0 {
				bad("input %s in model %s is not mapped to any ensemble tensors", in.Name, st.ModelName)
			}
		}
		targets := map[string]bool{}
		for _, key := range sortedKeys(st.OutputMap) {
			tensor := st.OutputMap[key]
			var out *tritonpb.ModelOutput
			for _, x := range m.Output {
				if x.Name == key {
					out = x
				}
			}
			if out == nil {
				bad("ensemble tensor %s is mapped from non-existing output %s in model %s", tensor, key, st.ModelName)
				continue
			}
			if targets[tensor] {
				bad("multiple outputs in model %s are mapped to the same ensemble tensor %s", st.ModelName, tensor)
			}
			targets[tensor] = true
			written[tensor] = true
			consistent(tensor, tensorNode{st.ModelName, out.DataType, out.Dims})
		}
	}
	for _, in := range c.Input {
		if !used[in.Name] {
			p = append(p, "ensemble input '"+in.Name+"' for ensemble "+c.Name+"' is not used")
		}
	}
	for _, out := range c.Output {
		if !written[out.Name] {
			p = append(p, "ensemble output '"+out.Name+"' for ensemble "+c.Name+"' is not written")
			continue
		}
		consistent(out.Name, tensorNode{c.Name, out.DataType, out.Dims})
	}
	return p
}

// checkBLS checks the request the bls model sends against the encoder's
// config as Triton core checks any request when it arrives (every input
// given once with the declared data type, requested outputs declared) and
// the batch it can send against max_batch_size.
func checkBLS(c *tritonpb.ModelConfig, models map[string]*tritonpb.ModelConfig) []string {
	var p []string
	bad := func(f string, a ...any) { p = append(p, c.Name+" (BLS): "+fmt.Sprintf(f, a...)) }
	encName := param(c, ParamEncoderModel)
	enc := models[encName]
	if enc == nil {
		bad("calls model %q, which is not in the repository", encName)
		return p
	}
	if enc.MaxBatchSize < c.MaxBatchSize {
		bad("one execute can send %d rows but %s allows max_batch_size %d", c.MaxBatchSize, encName, enc.MaxBatchSize)
	}
	sent := map[string]string{}
	for _, item := range strings.Split(param(c, "encoder_inputs"), ",") {
		name, dt, _ := strings.Cut(item, ":")
		sent[name] = dt
	}
	for _, in := range enc.Input {
		dt, ok := sent[in.Name]
		if !ok {
			bad("%s expects input %s, which the request does not send", encName, in.Name)
			continue
		}
		if dt != in.DataType.String() {
			bad("input %s is sent as %s but %s declares %s", in.Name, dt, encName, in.DataType)
		}
		if !dimsMatch(in.Dims, []int64{-1}) {
			bad("input %s of %s has dims %v; the request sends [batch, seq]", in.Name, encName, in.Dims)
		}
		delete(sent, in.Name)
	}
	for _, name := range sortedKeys(sent) {
		bad("unexpected inference input '%s' for model '%s'", name, encName)
	}
	outName := param(c, "encoder_output")
	var out *tritonpb.ModelOutput
	for _, o := range enc.Output {
		if o.Name == outName {
			out = o
		}
	}
	var want *tritonpb.ModelOutput
	for _, o := range c.Output {
		if o.Name == OutputName {
			want = o
		}
	}
	switch {
	case out == nil:
		bad("requests output %s, which %s does not declare", outName, encName)
	case want == nil:
		bad("declares no output %s", OutputName)
	case out.DataType != want.DataType || !dimsMatch(out.Dims, want.Dims) || len(out.Dims) != 1 || out.Dims[0] < 1:
		bad("%s gives %s %v but %s answers %s %v", encName, out.DataType, out.Dims, c.Name, want.DataType, want.Dims)
	}
	sort.Strings(p)
	return p
}

// CheckRepository reads the named models of a repository (every model
// folder when names is nil) and applies the same rules as checkPlan: the
// checks Triton core makes when it loads them, and a bls model's calls
// against its encoder. Models a named one depends on (an ensemble's steps,
// a bls model's encoder) are read too. It returns the problems found.
func CheckRepository(root string, names []string) ([]string, error) {
	if names == nil {
		var err error
		if names, err = ListModels(root); err != nil {
			return nil, err
		}
	}
	var plan []*plannedModel
	for _, name := range withDependencies(root, names) {
		text, err := os.ReadFile(filepath.Join(root, name, "config.pbtxt"))
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		cfg, err := tritonpb.ParseConfig(text)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		if cfg.Name == "" {
			cfg.Name = name
		}
		plan = append(plan, &plannedModel{cfg: cfg})
	}
	return checkPlan(plan), nil
}
