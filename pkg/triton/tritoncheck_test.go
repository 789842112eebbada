package triton

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// planFor plans a layout without writing it.
func planFor(t *testing.T, layout string) []*plannedModel {
	t.Helper()
	o := baseOptions(t)
	o.Layout = layout
	o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64)
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	f, _, err := gatherFacts(o)
	if err != nil {
		t.Fatal(err)
	}
	var plan []*plannedModel
	switch layout {
	case LayoutBLS:
		plan, err = blsLayout(o, f)
	case LayoutEnsemble:
		plan, err = ensembleLayout(o, f)
	default:
		plan, err = pythonLayout(o, f)
	}
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func byName(plan []*plannedModel, name string) *tritonpb.ModelConfig {
	for _, m := range plan {
		if m.cfg.Name == name {
			return m.cfg
		}
	}
	return nil
}

// TestCheckPlanAppliesTritonRules: each damage is one Triton core refuses
// at load time (or, for the BLS call, at request time), with its message.
func TestCheckPlanAppliesTritonRules(t *testing.T) {
	const ens, tok, enc = "m3e-base-trt", "m3e-base-trt-tokenizer", "m3e-base-trt-encoder"
	cases := []struct {
		name, layout string
		damage       func(plan []*plannedModel)
		want         string
	}{
		{"intact bls", LayoutBLS, func([]*plannedModel) {}, ""},
		{"intact ensemble", LayoutEnsemble, func([]*plannedModel) {}, ""},
		{"intact python", LayoutPython, func([]*plannedModel) {}, ""},
		{"BLS input dtype differs from the encoder's", LayoutBLS, func(p []*plannedModel) {
			byName(p, enc).Input[0].DataType = tritonpb.DataType_TYPE_INT32
		}, "input input_ids is sent as TYPE_INT64 but m3e-base-trt-encoder declares TYPE_INT32"},
		{"BLS sends an input the encoder lacks", LayoutBLS, func(p []*plannedModel) {
			c := byName(p, enc)
			c.Input = c.Input[:1]
		}, "unexpected inference input 'attention_mask'"},
		{"BLS encoder's max batch below the caller's", LayoutBLS, func(p []*plannedModel) { byName(p, enc).MaxBatchSize = 8 }, "allows max_batch_size 8"},
		{"BLS encoder missing", LayoutBLS, func(p []*plannedModel) { byName(p, ens).Parameters[ParamEncoderModel].StringValue = "ghost" }, `calls model "ghost"`},
		{"BLS output width differs", LayoutBLS, func(p []*plannedModel) { byName(p, enc).Output[0].Dims = []int64{768} }, "gives TYPE_FP32 [768]"},
		{"ensemble step input not mapped", LayoutEnsemble, func(p []*plannedModel) {
			delete(byName(p, ens).GetEnsembleScheduling().Step[1].InputMap, "attention_mask")
		}, "input attention_mask in model m3e-base-trt-encoder is not mapped to any ensemble tensors"},
		{"ensemble maps a non-existing input", LayoutEnsemble, func(p []*plannedModel) {
			byName(p, ens).GetEnsembleScheduling().Step[1].InputMap["token_type_ids"] = "tokens_input_ids"
		}, "mapping to non-existing input token_type_ids"},
		{"ensemble maps a non-existing output", LayoutEnsemble, func(p []*plannedModel) {
			byName(p, ens).GetEnsembleScheduling().Step[0].OutputMap["token_type_ids"] = "x"
		}, "mapped from non-existing output token_type_ids"},
		{"ensemble tensor of two dtypes", LayoutEnsemble, func(p []*plannedModel) {
			byName(p, tok).Output[0].DataType = tritonpb.DataType_TYPE_INT32
		}, "inconsistent data type"},
		{"ensemble output never written", LayoutEnsemble, func(p []*plannedModel) {
			byName(p, ens).GetEnsembleScheduling().Step[1].OutputMap = map[string]string{"embeddings": "other"}
		}, "ensemble output 'embeddings' for ensemble m3e-base-trt' is not written"},
		{"ensemble step with a smaller max batch", LayoutEnsemble, func(p []*plannedModel) { byName(p, tok).MaxBatchSize = 4 }, "which only allows maximum batch size to be 4"},
		{"ensemble with an instance group", LayoutEnsemble, func(p []*plannedModel) {
			byName(p, ens).InstanceGroup = instanceGroup(1, "cpu", nil)
		}, "instance group should not be specified for ensemble"},
		{"ensemble with warmup", LayoutEnsemble, func(p []*plannedModel) { byName(p, ens).ModelWarmup = textWarmup() }, "model_warmup can not be specified for ensemble"},
		{"dims of 0", LayoutBLS, func(p []*plannedModel) { byName(p, enc).Input[0].Dims = []int64{0} }, "dimension must be integer >= 1, or -1"},
		{"TensorRT on CPU instances", LayoutBLS, func(p []*plannedModel) {
			byName(p, enc).InstanceGroup = instanceGroup(1, "cpu", nil)
		}, "the TensorRT backend runs KIND_GPU only"},
		{"warmup batch above max_batch_size", LayoutBLS, func(p []*plannedModel) { byName(p, enc).ModelWarmup[0].BatchSize = 64 }, "batch_size 64 exceeds max_batch_size 32"},
		{"warmup misses an input", LayoutBLS, func(p []*plannedModel) { delete(byName(p, enc).ModelWarmup[0].Inputs, "input_ids") }, "gives no data for input input_ids"},
		{"platform and backend both", LayoutEnsemble, func(p []*plannedModel) { byName(p, ens).Backend = "python" }, "unexpected 'platform' and 'backend' pair"},
		{"preferred batch above max", LayoutBLS, func(p []*plannedModel) {
			byName(p, ens).GetDynamicBatching().PreferredBatchSize = []int32{64}
		}, "dynamic batching preferred size must be <= max batch size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan := planFor(t, c.layout)
			c.damage(plan)
			problems := strings.Join(checkPlan(plan), "\n")
			if c.want == "" && problems != "" || c.want != "" && !strings.Contains(problems, c.want) {
				t.Fatalf("problems:\n%s\nwant %q", problems, c.want)
			}
		})
	}
}

// TestEveryWrittenConfigParsesAsTriton parses every config.pbtxt under the
// golden folders with Triton's model_config.proto and runs checkPlan's
// rules on them as a whole repository.
func TestEveryWrittenConfigParsesAsTriton(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(goldenDir, "*", "files.golden"))
	if len(dirs) < 5 {
		t.Fatalf("only %d golden repositories", len(dirs))
	}
	for _, d := range dirs {
		var plan []*plannedModel
		configs, _ := filepath.Glob(filepath.Join(filepath.Dir(d), "*.pbtxt"))
		for _, p := range configs {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := tritonpb.ParseConfig(b)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			plan = append(plan, &plannedModel{cfg: cfg})
		}
		if problems := checkPlan(plan); len(problems) > 0 {
			t.Errorf("%s: %v", filepath.Dir(d), problems)
		}
	}
}

func TestReleaseTable(t *testing.T) {
	cases := []struct{ image, trt, want string }{
		{"nvcr.io/nvidia/tritonserver:23.08-py3", "8.6.1", "ships TensorRT 8.6.1.6"},
		{"nvcr.io/nvidia/tritonserver:24.08-py3-sdk", "10.3.0", "ships TensorRT 10.3.0.26"},
		{"nvcr.io/nvidia/tritonserver:26.06-py3", "11.1.0", "ships TensorRT 11"},
		{"nvcr.io/nvidia/tritonserver:26.08-py3", "11.0.0", "ships TensorRT 11.x; m3ectl's table does not pin the minor version"},
		{"nvcr.io/nvidia/tritonserver:26.06-py3", "10.3.0", "use nvcr.io/nvidia/tritonserver:24.08-py3 or rebuild"},
		{"nvcr.io/nvidia/tritonserver:24.08-py3", "10.4.0", "use nvcr.io/nvidia/tritonserver:24.09-py3 or rebuild"},
		{"nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3", "10.14.1", "ships TensorRT 10.14.1.48"},
		{"nvcr.io/nvidia/tritonserver:22.12-py3", "8.5.1", "error: Triton release 22.12 (py3) is not in m3ectl's release table"},
		{"tritonserver:latest", "10.3.0", "error: cannot tell the Triton release"},
		{"nvcr.io/nvidia/tritonserver:26.06-py3", "", "not checked"},
	}
	for _, c := range cases {
		note, err := CheckImage(c.image, c.trt, false)
		got := note
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("CheckImage(%s, %s) = %q, want %q", c.image, c.trt, got, c.want)
		}
	}
	prev := map[string]string{}
	for _, r := range Releases {
		if r.Source == "" || r.TensorRT == "" {
			t.Errorf("row %+v lacks a source or version", r)
		}
		if r.To != "" && r.To < r.From || prev[r.Variant] != "" && r.From <= prev[r.Variant] {
			t.Errorf("row %+v overlaps or is out of order", r)
		}
		prev[r.Variant] = r.To
		if r.To == "" {
			prev[r.Variant] = "99.99"
		}
	}
}

// FuzzCheckImage: any image reference and engine version give a note or
// one error, never a panic, and a match is never refused.
func FuzzCheckImage(f *testing.F) {
	for _, s := range []string{"nvcr.io/nvidia/tritonserver:26.06-py3", "tritonserver:24.08-py3-sdk@sha256:abc", "x:99.99-trtllm-python-py3", ":", "a/b:c/d", "23.08-py3"} {
		f.Add(s, "10.3.0")
	}
	f.Fuzz(func(t *testing.T, image, trt string) {
		note, err := CheckImage(image, trt, false)
		if err != nil && note != "" {
			t.Fatalf("both a note %q and an error %v", note, err)
		}
		if _, r, rerr := ReleaseOf(image); rerr == nil && r != nil && sameTRT(r.TensorRT, trt) && err != nil {
			t.Fatalf("matching TensorRT refused: %v", err)
		}
	})
}
