package triton

import (
	"strconv"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// padBuckets are the lengths the ensemble's tokenizer pads to: powers of
// two from 16 up to maxLength (and maxLength itself).
func padBuckets(maxLength int) []int {
	var b []int
	for n := 16; n < maxLength; n *= 2 {
		b = append(b, n)
	}
	return append(b, maxLength)
}

// ensembleLayout is NAME (ensemble) → NAME-tokenizer (python) →
// NAME-encoder. Triton's dynamic batcher merges only requests whose
// shapes are equal (dims other than the batch dimension must match,
// model_config.proto's ModelDynamicBatching), so the tokenizer pads every
// response of one execute to the same bucketed length: the encoder then
// merges them, at the price of padding (see docs/tensorrt-triton.md).
func ensembleLayout(o RepoOptions, f *modelFacts) ([]*plannedModel, error) {
	tokName, encName := o.Name+"-tokenizer", o.Name+"-encoder"
	enc := encoderModel(o, f, encName, RoleEnsEncoder)
	tok := &plannedModel{version: o.Version, files: map[string]string{}, gen: map[string][]byte{}, python: PythonFile}
	if err := tokenizerFiles(tok, o, f); err != nil {
		return nil, err
	}
	src, err := pythonSource("ensemble_tokenizer.py")
	if err != nil {
		return nil, err
	}
	tok.gen[tok.vpath(PythonFile)] = src
	var buckets []string
	for _, b := range padBuckets(f.maxLength) {
		buckets = append(buckets, strconv.Itoa(b))
	}
	pad, _ := f.tok.PadID()
	var tokOut []*tritonpb.ModelOutput
	tokMap, encMap := map[string]string{}, map[string]string{}
	for _, in := range f.inputs {
		tokOut = append(tokOut, &tritonpb.ModelOutput{Name: in.name, DataType: tritonDType(in.dtype), Dims: []int64{-1}})
		tokMap[in.name] = "tokens_" + in.name
		encMap[in.name] = "tokens_" + in.name
	}
	tok.cfg = &tritonpb.ModelConfig{
		Name: tokName, Backend: "python", MaxBatchSize: int32(o.MaxBatchSize),
		Input: textInput(), Output: tokOut,
		InstanceGroup:    instanceGroup(o.Instances, "cpu", nil),
		SchedulingChoice: dynamicBatching(o),
		Parameters: params(ParamLayout, RoleEnsTokenizer, "vocab", VocabFile, "tokenizer_spec", TokenizerSpec,
			"max_length", strconv.Itoa(f.maxLength), "pad_buckets", strings.Join(buckets, ","),
			"pad_id", strconv.Itoa(int(pad)), "lowercase", strconv.FormatBool(f.tok.Options().Lower)),
	}
	ens := &plannedModel{version: o.Version, files: map[string]string{}, gen: map[string][]byte{}}
	ens.cfg = &tritonpb.ModelConfig{
		Name: o.Name, Platform: "ensemble", MaxBatchSize: int32(o.MaxBatchSize),
		Input: textInput(), Output: embeddingsOutput(OutputName, f.dim),
		SchedulingChoice: &tritonpb.ModelConfig_EnsembleScheduling{EnsembleScheduling: &tritonpb.ModelEnsembling{
			Step: []*tritonpb.ModelEnsembling_Step{
				{ModelName: tokName, ModelVersion: -1, InputMap: map[string]string{InputName: InputName}, OutputMap: tokMap},
				{ModelName: encName, ModelVersion: -1, InputMap: encMap, OutputMap: map[string]string{f.output: OutputName}},
			},
		}},
		Parameters: params(ParamLayout, RoleEnsemble),
	}
	// Triton wants a version folder for the ensemble too; it stays empty
	// but for a note, since Triton ignores its contents.
	ens.gen[ens.vpath("README")] = []byte("The ensemble " + o.Name + " has no files of its own: its steps are " + tokName + " and " + encName + ".\n")
	return []*plannedModel{ens, tok, enc}, nil
}
