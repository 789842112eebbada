package repository

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// The parameter m3ectl repo writes into every config of a repository it
// generates (pkg/triton's ParamLayout; repeated here because pkg/triton's
// tests import this package) and its values: which part of which layout a
// model is. m3ectl serve recognises the layouts by it, not by the files in
// the folders.
const (
	ParamLayout       = "M3ECTL_LAYOUT"
	layoutBLS         = "bls"
	layoutBLSEncoder  = "bls-encoder"
	layoutEnsemble    = "ensemble"
	layoutEnsTok      = "ensemble-tokenizer"
	layoutEnsEncoder  = "ensemble-encoder"
	layoutPython      = "python"
	paramEncoderModel = "ENCODER_MODEL"
)

// layoutPlan says where a model of an m3ectl layout keeps its parts:
// effective is the config whose instance groups, batching and parameters
// m3ectl serve follows (the client-facing config with the encoder's
// instances, and for an ensemble the encoder step's batcher and the
// tokenizer step's parameters); encoderDir and tokenizerDir are the model
// folders holding the ONNX graph and the vocabulary ("" for the model's own).
type layoutPlan struct {
	effective    *tritonpb.ModelConfig
	encoderDir   string
	tokenizerDir string
}

// paramValue reads a parameter by case-insensitive key.
func paramValue(cfg *tritonpb.ModelConfig, key string) string {
	for k, v := range cfg.GetParameters() {
		if strings.EqualFold(k, key) {
			return strings.TrimSpace(v.GetStringValue())
		}
	}
	return ""
}

// resolveLayout recognises the layouts m3ectl repo writes. It returns nil
// for a config m3ectl did not write (served as before: a Python or ONNX
// Runtime model with an ONNX graph in its version folder), and an error
// naming the step for what m3ectl serve cannot run.
func resolveLayout(cfg *tritonpb.ModelConfig, dir string) (*layoutPlan, error) {
	root := filepath.Dir(dir)
	switch role := paramValue(cfg, ParamLayout); role {
	case "", layoutPython:
		if cfg.GetEnsembleScheduling() != nil || strings.EqualFold(cfg.GetPlatform(), "ensemble") {
			return nil, unknownEnsemble(cfg)
		}
		return nil, nil
	case layoutBLS:
		encName := paramValue(cfg, paramEncoderModel)
		enc, err := stepConfig(root, cfg.GetName(), "its BLS encoder", encName, layoutBLSEncoder)
		if err != nil {
			return nil, err
		}
		eff := proto.Clone(cfg).(*tritonpb.ModelConfig)
		eff.InstanceGroup = enc.GetInstanceGroup()
		return &layoutPlan{effective: eff, encoderDir: filepath.Join(root, encName)}, nil
	case layoutEnsemble:
		steps := cfg.GetEnsembleScheduling().GetStep()
		if len(steps) != 2 {
			return nil, fmt.Errorf("ensemble %s has %d steps; m3ectl serve runs the two-step ensembles m3ectl repo writes (tokenizer, encoder)", cfg.GetName(), len(steps))
		}
		tok, err := stepConfig(root, cfg.GetName(), "step 0", steps[0].GetModelName(), layoutEnsTok)
		if err != nil {
			return nil, err
		}
		enc, err := stepConfig(root, cfg.GetName(), "step 1", steps[1].GetModelName(), layoutEnsEncoder)
		if err != nil {
			return nil, err
		}
		eff := proto.Clone(cfg).(*tritonpb.ModelConfig)
		eff.SchedulingChoice = nil
		if db := enc.GetDynamicBatching(); db != nil {
			eff.SchedulingChoice = &tritonpb.ModelConfig_DynamicBatching{DynamicBatching: db}
		}
		eff.InstanceGroup = enc.GetInstanceGroup()
		eff.Parameters = map[string]*tritonpb.ModelParameter{}
		for k, v := range tok.GetParameters() {
			if !strings.EqualFold(k, ParamLayout) {
				eff.Parameters[k] = v
			}
		}
		return &layoutPlan{effective: eff, encoderDir: filepath.Join(root, steps[1].GetModelName()),
			tokenizerDir: filepath.Join(root, steps[0].GetModelName())}, nil
	case layoutBLSEncoder, layoutEnsEncoder, layoutEnsTok:
		return nil, fmt.Errorf("model %s is a step of an m3ectl %s layout (%s, tensors in and out); m3ectl serve runs it inside the model that calls it: send text there", cfg.GetName(), strings.SplitN(role, "-", 2)[0], role)
	default:
		return nil, fmt.Errorf("parameter %s %q is not a layout m3ectl writes (bls, ensemble, python)", ParamLayout, role)
	}
}

// unknownEnsemble names the first step m3ectl serve cannot run.
func unknownEnsemble(cfg *tritonpb.ModelConfig) error {
	for i, st := range cfg.GetEnsembleScheduling().GetStep() {
		return fmt.Errorf("ensemble %s step %d (model %s) was not written by m3ectl repo; m3ectl serve runs only the ensembles m3ectl writes: serve the ONNX model, or run the repository with m3ectl serve --triton", cfg.GetName(), i, st.GetModelName())
	}
	return fmt.Errorf("ensemble %s has no steps", cfg.GetName())
}

// stepConfig reads the config of a model another one depends on and checks
// it plays the part it should.
func stepConfig(root, owner, what, name, role string) (*tritonpb.ModelConfig, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("%s: %s names model %q: %w", owner, what, name, err)
	}
	cfg, err := readConfig(filepath.Join(root, name), name)
	if err != nil {
		return nil, fmt.Errorf("%s: %s (model %s): %w", owner, what, name, err)
	}
	if got := paramValue(cfg, ParamLayout); got != role {
		return nil, fmt.Errorf("%s: %s (model %s) is not the %s m3ectl repo writes (%s %q); m3ectl serve cannot run it", owner, what, name, role, ParamLayout, got)
	}
	if role != layoutEnsTok {
		p := strings.ToLower(cfg.GetPlatform())
		if p != "onnxruntime_onnx" && p != "tensorrt_plan" {
			return nil, fmt.Errorf("%s: %s (model %s) has platform %q; m3ectl serve runs onnxruntime_onnx and tensorrt_plan encoders", owner, what, name, cfg.GetPlatform())
		}
	}
	return cfg, nil
}

// newestVersionDir is the version folder of a step model that serves: the
// newest its version policy allows.
func newestVersionDir(modelDir string) (string, error) {
	cfg, err := readConfig(modelDir, filepath.Base(modelDir))
	if err != nil {
		return "", err
	}
	onDisk, err := listVersions(modelDir)
	if err != nil {
		return "", err
	}
	vs := servedVersions(cfg.GetVersionPolicy(), onDisk)
	if len(vs) == 0 {
		return "", fmt.Errorf("model %s has no version folder", filepath.Base(modelDir))
	}
	return filepath.Join(modelDir, strconv.FormatInt(vs[len(vs)-1], 10)), nil
}
