package triton

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
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
	EngineFile    = "model.plan"
	ONNXFile      = "model.onnx"
	VocabFile     = "vocab.txt"
	PythonFile    = "model.py"
	TokenizerSpec = "bert_tokenizer.json"
	Requirements  = "requirements.txt"
)

// ParamLayout is the config parameter m3ectl writes into every model of a
// repository it generates, so that m3ectl serve recognises the layout and
// each model's part in it without looking at files. Its values:
const (
	ParamLayout       = "m3ectl_layout"
	RoleBLS           = "bls"                // client-facing Python model calling the encoder
	RoleBLSEncoder    = "bls-encoder"        // the encoder the bls model calls
	RoleEnsemble      = "ensemble"           // client-facing ensemble
	RoleEnsTokenizer  = "ensemble-tokenizer" // its tokenizer step
	RoleEnsEncoder    = "ensemble-encoder"   // its encoder step
	RolePython        = "python"             // the article's single model.py
	ParamEncoderModel = "encoder_model"      // the model a bls model calls
	ParamTensorRT     = "tensorrt_version"   // TensorRT version the engine was built with
)

// plannedModel is one model folder to write.
type plannedModel struct {
	cfg     *tritonpb.ModelConfig
	version int
	// files are copied: path relative to the model folder → source file.
	files map[string]string
	// gen are written: path relative to the model folder → content.
	gen map[string][]byte
	// python is the version-folder Python file to compile-check, "" for none.
	python string
}

func (m *plannedModel) vpath(name string) string { return filepath.Join(strconv.Itoa(m.version), name) }

func params(kv ...string) map[string]*tritonpb.ModelParameter {
	m := map[string]*tritonpb.ModelParameter{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = &tritonpb.ModelParameter{StringValue: kv[i+1]}
	}
	return m
}

func instanceGroup(count int, kind string, gpus []int32) []*tritonpb.ModelInstanceGroup {
	g := &tritonpb.ModelInstanceGroup{Count: int32(count), Kind: tritonpb.ModelInstanceGroup_KIND_CPU}
	if kind == "gpu" {
		g.Kind = tritonpb.ModelInstanceGroup_KIND_GPU
		g.Gpus = gpus
	}
	return []*tritonpb.ModelInstanceGroup{g}
}

func dynamicBatching(o RepoOptions) *tritonpb.ModelConfig_DynamicBatching {
	return &tritonpb.ModelConfig_DynamicBatching{DynamicBatching: &tritonpb.ModelDynamicBatching{
		MaxQueueDelayMicroseconds: uint64(o.MaxQueueDelayUs),
	}}
}

// textWarmup sends one short text through the client-facing model, so the
// first client request pays for no initialisation.
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

// The article's interface: text TYPE_STRING [-1] in (the client sends
// [N, 1]), embeddings TYPE_FP32 [dim] out.
func textInput() []*tritonpb.ModelInput {
	return []*tritonpb.ModelInput{{Name: InputName, DataType: tritonpb.DataType_TYPE_STRING, Dims: []int64{-1}}}
}

func embeddingsOutput(name string, dim int) []*tritonpb.ModelOutput {
	return []*tritonpb.ModelOutput{{Name: name, DataType: tritonpb.DataType_TYPE_FP32, Dims: []int64{int64(dim)}}}
}

func tritonDType(dtype string) tritonpb.DataType {
	if dtype == "int32" {
		return tritonpb.DataType_TYPE_INT32
	}
	return tritonpb.DataType_TYPE_INT64
}

// encoderModel is the pooled encoder: tensorrt_plan or onnxruntime_onnx,
// inputs exactly as the engine (or graph) takes them, warmed up at the
// profile's opt shape so the first request does not pay for TensorRT's
// lazy initialisation. The attention mask of the warmup is a file of ones
// in the model's warmup/ folder (backend_model_instance.cc@r26.06 reads
// input_data_file from there): zeros would make mean pooling divide by zero.
func encoderModel(o RepoOptions, f *modelFacts, name, role string) *plannedModel {
	m := &plannedModel{version: o.Version, files: map[string]string{}, gen: map[string][]byte{}}
	cfg := &tritonpb.ModelConfig{
		Name: name, MaxBatchSize: int32(o.MaxBatchSize),
		Output:           embeddingsOutput(f.output, f.dim),
		SchedulingChoice: dynamicBatching(o),
		Parameters:       params(ParamLayout, role),
	}
	warm := &tritonpb.ModelWarmup{Name: fmt.Sprintf("opt_shape_%dx%d", f.optBatch, f.optSeq), BatchSize: uint32(f.optBatch),
		Inputs: map[string]*tritonpb.ModelWarmup_Input{}}
	for _, in := range f.inputs {
		dt := tritonDType(in.dtype)
		cfg.Input = append(cfg.Input, &tritonpb.ModelInput{Name: in.name, DataType: dt, Dims: []int64{-1}})
		wi := &tritonpb.ModelWarmup_Input{DataType: dt, Dims: []int64{f.optSeq}, InputDataType: &tritonpb.ModelWarmup_Input_ZeroData{ZeroData: true}}
		if in.name == "attention_mask" {
			file := "attention_mask_ones"
			wi.InputDataType = &tritonpb.ModelWarmup_Input_InputDataFile{InputDataFile: file}
			m.gen[filepath.Join("warmup", file)] = ones(in.dtype, int(f.optSeq))
		}
		warm.Inputs[in.name] = wi
	}
	cfg.ModelWarmup = []*tritonpb.ModelWarmup{warm}
	if o.Encoder == EncoderTensorRT {
		cfg.Platform = "tensorrt_plan"
		cfg.InstanceGroup = instanceGroup(o.Instances, "gpu", o.GPUs)
		m.files[m.vpath(EngineFile)] = o.Engine
		if f.trt != "" {
			cfg.Parameters[ParamTensorRT] = &tritonpb.ModelParameter{StringValue: f.trt}
		}
		if o.ONNX != "" { // for m3ectl serve on machines without TensorRT; Triton ignores it
			addONNX(m, o.ONNX, f.extData)
		}
	} else {
		cfg.Platform = "onnxruntime_onnx"
		cfg.InstanceGroup = instanceGroup(o.Instances, o.Kind, o.GPUs)
		addONNX(m, o.ONNX, f.extData)
	}
	m.cfg = cfg
	return m
}

// ones is n little-endian ones of dtype, one sample of warmup data.
func ones(dtype string, n int) []byte {
	size := 8
	if dtype == "int32" {
		size = 4
	}
	b := make([]byte, n*size)
	for i := 0; i < n; i++ {
		if size == 4 {
			binary.LittleEndian.PutUint32(b[i*4:], 1)
		} else {
			binary.LittleEndian.PutUint64(b[i*8:], 1)
		}
	}
	return b
}

// addONNX copies the graph as model.onnx and its external-data files under
// their own names (the graph refers to them by relative path).
func addONNX(m *plannedModel, onnx string, extData []string) {
	m.files[m.vpath(ONNXFile)] = onnx
	for _, e := range extData {
		m.files[m.vpath(filepath.Base(e))] = filepath.Join(filepath.Dir(onnx), e)
	}
}

// tokenizerFiles are the vocabulary and the tokenizer's portable spec (its
// settings and Unicode tables) that the Python tokenizer reads.
func tokenizerFiles(m *plannedModel, o RepoOptions, f *modelFacts) error {
	m.files[m.vpath(VocabFile)] = o.Vocab
	spec := f.tok.WithMaxLength(f.maxLength).Portable()
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("repo: tokenizer spec: %w", err)
	}
	m.gen[m.vpath(TokenizerSpec)] = b
	return nil
}

// pythonSource is the tokenizer, the parts every model shares
// (text_rows.py) and one model body, in one file, so the model needs
// nothing beside it but its data.
func pythonSource(body string) ([]byte, error) {
	src := []byte("# Written by m3ectl repo. Runs in the stock Triton Python backend: numpy and the standard library only.\n")
	for _, name := range []string{"bert_tokenizer.py", "text_rows.py", body} {
		b, err := pythonFiles.ReadFile("python/" + name)
		if err != nil {
			return nil, err
		}
		src = append(src, b...)
	}
	return src, nil
}

func encoderInputsParam(f *modelFacts) string {
	var parts []string
	for _, in := range f.inputs {
		parts = append(parts, in.name+":"+tritonDType(in.dtype).String())
	}
	return strings.Join(parts, ",")
}

// blsLayout is the default: NAME (python, numpy-only tokenizer, dynamic
// batching) calls NAME-encoder through BLS once per execute.
func blsLayout(o RepoOptions, f *modelFacts) ([]*plannedModel, error) {
	encName := o.Name + "-encoder"
	enc := encoderModel(o, f, encName, RoleBLSEncoder)
	tok := &plannedModel{version: o.Version, files: map[string]string{}, gen: map[string][]byte{}, python: PythonFile}
	if err := tokenizerFiles(tok, o, f); err != nil {
		return nil, err
	}
	src, err := pythonSource("bls_model.py")
	if err != nil {
		return nil, err
	}
	tok.gen[tok.vpath(PythonFile)] = src
	pad, _ := f.tok.PadID()
	tok.cfg = &tritonpb.ModelConfig{
		Name: o.Name, Backend: "python", MaxBatchSize: int32(o.MaxBatchSize),
		Input: textInput(), Output: embeddingsOutput(OutputName, f.dim),
		InstanceGroup:    instanceGroup(o.Instances, "cpu", nil),
		SchedulingChoice: dynamicBatching(o),
		// No model_warmup: it would call the encoder over BLS while Triton
		// may still be loading it; the encoder warms up itself.
		Parameters: params(ParamLayout, RoleBLS, ParamEncoderModel, encName,
			"encoder_inputs", encoderInputsParam(f), "encoder_output", f.output,
			"vocab", VocabFile, "tokenizer_spec", TokenizerSpec, "max_length", strconv.Itoa(f.maxLength),
			"pad_id", strconv.Itoa(int(pad)), "lowercase", strconv.FormatBool(f.tok.Options().Lower)),
	}
	return []*plannedModel{tok, enc}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
