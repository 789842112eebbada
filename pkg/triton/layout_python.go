package triton

import (
	"fmt"
	"strconv"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// pythonLayout is the article's single model: model.py tokenises and runs
// the pooled engine itself through TensorRT's Python API (named-tensor
// API, as in 8.5 and later; nothing removed in 10 or 11), with device
// buffers from cuda-python. The stock image has neither module, so the
// folder carries a requirements.txt pinning the engine's own TensorRT, and
// the image must be built with it (as the article did).
func pythonLayout(o RepoOptions, f *modelFacts) ([]*plannedModel, error) {
	if f.trt == "" {
		return nil, fmt.Errorf("repo: the python layout pins the engine's TensorRT in requirements.txt, but %s has no build metadata: build it with m3ectl build-engine", o.Engine)
	}
	m := &plannedModel{version: o.Version, files: map[string]string{}, gen: map[string][]byte{}, python: PythonFile}
	if err := tokenizerFiles(m, o, f); err != nil {
		return nil, err
	}
	src, err := pythonSource("python_trt_model.py")
	if err != nil {
		return nil, err
	}
	m.gen[m.vpath(PythonFile)] = src
	m.files[m.vpath(EngineFile)] = o.Engine
	if o.ONNX != "" {
		addONNX(m, o.ONNX, f.extData)
	}
	m.gen[m.vpath(Requirements)] = []byte(requirements(f.trt))
	pad, _ := f.tok.PadID()
	m.cfg = &tritonpb.ModelConfig{
		Name: o.Name, Backend: "python", MaxBatchSize: int32(o.MaxBatchSize),
		Input: textInput(), Output: embeddingsOutput(OutputName, f.dim),
		InstanceGroup:    instanceGroup(o.Instances, "gpu", o.GPUs),
		SchedulingChoice: dynamicBatching(o),
		ModelWarmup:      textWarmup(),
		Parameters: params(ParamLayout, RolePython, "engine", EngineFile, "engine_inputs", encoderInputsParam(f),
			"engine_output", f.output, ParamTensorRT, f.trt,
			"vocab", VocabFile, "tokenizer_spec", TokenizerSpec, "max_length", strconv.Itoa(f.maxLength),
			"pad_id", strconv.Itoa(int(pad)), "lowercase", strconv.FormatBool(f.tok.Options().Lower)),
	}
	if o.ONNX != "" {
		m.cfg.Parameters["onnx"] = &tritonpb.ModelParameter{StringValue: ONNXFile}
	}
	return []*plannedModel{m}, nil
}

// requirements pins the tensorrt wheel to the engine's exact version
// (engines load only under the TensorRT that built them) and cuda-python
// for device buffers.
func requirements(trt string) string {
	return "# pip install -r requirements.txt inside the Triton image (the stock image has neither)\n" +
		"tensorrt==" + trt + "\n" +
		"cuda-python\n"
}
