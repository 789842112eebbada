package triton

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// Tensor names clients see, the article's.
const (
	InputName  = "text"
	OutputName = "embeddings"
)

// File names inside a version folder.
const (
	EngineFile = "model.plan"
	ONNXFile   = "model.onnx"
	VocabFile  = "vocab.txt"
	PythonFile = "model.py"
)

func params(kv ...string) map[string]*tritonpb.ModelParameter {
	m := map[string]*tritonpb.ModelParameter{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = &tritonpb.ModelParameter{StringValue: kv[i+1]}
	}
	return m
}

func instanceGroup(o RepoOptions, kind string) []*tritonpb.ModelInstanceGroup {
	g := &tritonpb.ModelInstanceGroup{Count: int32(o.Instances), Kind: tritonpb.ModelInstanceGroup_KIND_CPU}
	if kind == "gpu" {
		g.Kind = tritonpb.ModelInstanceGroup_KIND_GPU
		g.Gpus = o.GPUs
	}
	return []*tritonpb.ModelInstanceGroup{g}
}

func dynamicBatching(o RepoOptions) *tritonpb.ModelConfig_DynamicBatching {
	return &tritonpb.ModelConfig_DynamicBatching{DynamicBatching: &tritonpb.ModelDynamicBatching{
		MaxQueueDelayMicroseconds: uint64(o.MaxQueueDelayUs),
	}}
}

// textWarmup sends one empty string, so the first client request does not
// pay for TensorRT/CUDA initialisation.
func textWarmup() []*tritonpb.ModelWarmup {
	return []*tritonpb.ModelWarmup{{
		Name:      "warmup_text",
		BatchSize: 1,
		Inputs: map[string]*tritonpb.ModelWarmup_Input{InputName: {
			DataType:      tritonpb.DataType_TYPE_STRING,
			Dims:          []int64{1},
			InputDataType: &tritonpb.ModelWarmup_Input_ZeroData{ZeroData: true},
		}},
	}}
}

func textInput() []*tritonpb.ModelInput {
	return []*tritonpb.ModelInput{{Name: InputName, DataType: tritonpb.DataType_TYPE_STRING, Dims: []int64{1}}}
}

func embeddingsOutput(dim int) []*tritonpb.ModelOutput {
	return []*tritonpb.ModelOutput{{Name: OutputName, DataType: tritonpb.DataType_TYPE_FP32, Dims: []int64{int64(dim)}}}
}

// pythonLayout is the article's single Python-backend model.
func pythonLayout(o RepoOptions, f *modelFacts) []*plannedModel {
	files := map[string]string{PythonFile: "embed:model.py", VocabFile: o.Vocab}
	kv := []string{"vocab", VocabFile, "max_length", strconv.Itoa(f.maxLength), "pooling", "mean", "normalize", "true", "lowercase", "true"}
	if o.Engine != "" {
		files[EngineFile] = o.Engine
		kv = append(kv, "engine", EngineFile)
	}
	if o.ONNX != "" {
		addONNX(files, o.ONNX, f.extData)
		kv = append(kv, "onnx", ONNXFile)
	}
	cfg := &tritonpb.ModelConfig{
		Name:             o.Name,
		Backend:          "python",
		MaxBatchSize:     int32(o.MaxBatchSize),
		Input:            textInput(),
		Output:           embeddingsOutput(f.dim),
		InstanceGroup:    instanceGroup(o, o.Kind),
		SchedulingChoice: dynamicBatching(o),
		ModelWarmup:      textWarmup(),
		Parameters:       params(kv...),
	}
	return []*plannedModel{{cfg: cfg, version: o.Version, files: files, pyFile: PythonFile}}
}

// addONNX copies the graph as model.onnx and its external-data files under
// their own names (the graph refers to them by relative path).
func addONNX(files map[string]string, onnx string, extData []string) {
	files[ONNXFile] = onnx
	for _, e := range extData {
		files[filepath.Base(e)] = filepath.Join(filepath.Dir(onnx), e)
	}
}

// ensembleLayout is tokenizer (python) → engine (tensorrt_plan, or
// onnxruntime_onnx without an engine) → pooling (python), wired by an
// ensemble model that carries the client-facing name.
func ensembleLayout(o RepoOptions, f *modelFacts) []*plannedModel {
	tokName, engName, poolName := o.Name+"_tokenizer", o.Name+"_engine", o.Name+"_pooling"
	useEngine := o.Engine != ""
	dtypeOf := func(onnxType, name string) tritonpb.DataType {
		t := onnxType
		if useEngine {
			t = f.engineType[name]
		}
		if t == "int32" {
			return tritonpb.DataType_TYPE_INT32
		}
		return tritonpb.DataType_TYPE_INT64
	}

	var engIn []*tritonpb.ModelInput
	var tokOutputs []*tritonpb.ModelOutput
	engInMap, tokOutMap := map[string]string{}, map[string]string{}
	maskTensor := ""
	for _, in := range f.inputs {
		dt := dtypeOf(in.DType, in.Name)
		tokOutputs = append(tokOutputs, &tritonpb.ModelOutput{Name: in.Name, DataType: dt, Dims: []int64{-1}})
		engIn = append(engIn, &tritonpb.ModelInput{Name: in.Name, DataType: dt, Dims: []int64{-1}})
		tokOutMap[in.Name] = "tok_" + in.Name
		engInMap[in.Name] = "tok_" + in.Name
		if strings.Contains(in.Name, "mask") {
			maskTensor = in.Name
		}
	}
	tok := &tritonpb.ModelConfig{
		Name: tokName, Backend: "python", MaxBatchSize: int32(o.MaxBatchSize),
		Input: textInput(), Output: tokOutputs,
		InstanceGroup:    instanceGroup(o, "cpu"),
		SchedulingChoice: dynamicBatching(o),
		Parameters:       params("vocab", VocabFile, "max_length", strconv.Itoa(f.maxLength), "lowercase", "true"),
	}
	eng := &tritonpb.ModelConfig{
		Name: engName, MaxBatchSize: int32(o.MaxBatchSize), Input: engIn,
		Output:           []*tritonpb.ModelOutput{{Name: f.hidden, DataType: tritonpb.DataType_TYPE_FP32, Dims: []int64{-1, int64(f.dim)}}},
		InstanceGroup:    instanceGroup(o, o.Kind),
		SchedulingChoice: dynamicBatching(o),
	}
	engFiles := map[string]string{}
	if useEngine {
		eng.Platform, eng.DefaultModelFilename = "tensorrt_plan", EngineFile
		engFiles[EngineFile] = o.Engine
	} else {
		eng.Platform, eng.DefaultModelFilename = "onnxruntime_onnx", ONNXFile
		addONNX(engFiles, o.ONNX, f.extData)
	}
	pool := &tritonpb.ModelConfig{
		Name: poolName, Backend: "python", MaxBatchSize: int32(o.MaxBatchSize),
		Input: []*tritonpb.ModelInput{
			{Name: f.hidden, DataType: tritonpb.DataType_TYPE_FP32, Dims: []int64{-1, int64(f.dim)}},
			{Name: "attention_mask", DataType: dtypeOf("int64", maskTensor), Dims: []int64{-1}},
		},
		Output:        embeddingsOutput(f.dim),
		InstanceGroup: instanceGroup(o, "cpu"),
		Parameters:    params("pooling", "mean", "normalize", "true"),
	}
	ens := &tritonpb.ModelConfig{
		Name: o.Name, Platform: "ensemble", MaxBatchSize: int32(o.MaxBatchSize),
		Input: textInput(), Output: embeddingsOutput(f.dim),
		SchedulingChoice: &tritonpb.ModelConfig_EnsembleScheduling{EnsembleScheduling: &tritonpb.ModelEnsembling{
			Step: []*tritonpb.ModelEnsembling_Step{
				{ModelName: tokName, ModelVersion: -1, InputMap: map[string]string{InputName: InputName}, OutputMap: tokOutMap},
				{ModelName: engName, ModelVersion: -1, InputMap: engInMap, OutputMap: map[string]string{f.hidden: "hidden_states"}},
				{ModelName: poolName, ModelVersion: -1,
					InputMap:  map[string]string{f.hidden: "hidden_states", "attention_mask": "tok_" + maskTensor},
					OutputMap: map[string]string{OutputName: OutputName}},
			},
		}},
	}
	// With --onnx the client-facing folder also carries the graph and the
	// vocabulary, so `m3ectl serve` can serve the same repository on a CPU;
	// Triton ignores files in an ensemble's version folder.
	ensFiles := map[string]string{}
	if o.ONNX != "" {
		addONNX(ensFiles, o.ONNX, f.extData)
		ensFiles[VocabFile] = o.Vocab
	}
	return []*plannedModel{
		{cfg: tok, version: o.Version, files: map[string]string{PythonFile: "embed:tokenizer.py", VocabFile: o.Vocab}, pyFile: PythonFile},
		{cfg: eng, version: o.Version, files: engFiles},
		{cfg: pool, version: o.Version, files: map[string]string{PythonFile: "embed:pooling.py"}, pyFile: PythonFile},
		{cfg: ens, version: o.Version, files: ensFiles},
	}
}

func sortedFileNames(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

func cutPrefix(s, p string) (string, bool) { return strings.CutPrefix(s, p) }

func splitNonEmpty(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}
