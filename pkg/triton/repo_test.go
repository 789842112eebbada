package triton

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/triton")

const (
	tinyDir   = "../../testdata/m3e-tiny"
	goldenDir = "../../testdata/triton"
)

// fakeEngine writes an engine file and the metadata build-engine records,
// as TensorRT ver would for the tiny model with the given max batch.
func fakeEngine(t *testing.T, ver convert.TRTVersion, maxBatch int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m3e-tiny.plan")
	if err := os.WriteFile(path, []byte("FAKETRT engine bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := func(name string) convert.EngineTensor {
		return convert.EngineTensor{Name: name, ONNXDType: "int64", DType: convert.EngineInputDType(ver, "int64"),
			Min: []int64{1, 1}, Opt: []int64{8, 64}, Max: []int64{maxBatch, 256}}
	}
	meta := &convert.EngineMeta{TensorRT: ver.String(), Precision: []string{"fp32", "fp16"},
		Inputs:  []convert.EngineTensor{in("input_ids"), in("attention_mask")},
		Outputs: []convert.EngineTensor{{Name: "output", ONNXDType: "float32", DType: "float32"}},
		Hidden:  64, MaxPositions: 512, MaxBatch: maxBatch, MaxSeq: 256, BuiltAt: time.Unix(0, 0).UTC()}
	if err := convert.WriteEngineMeta(convert.MetaPath(path), meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func baseOptions(t *testing.T) RepoOptions {
	return RepoOptions{Name: "m3e-base-trt", Out: filepath.Join(t.TempDir(), "model_repository"),
		Vocab: filepath.Join(tinyDir, "vocab.txt"), MaxBatchSize: 32, Instances: 2, Kind: "gpu", GPUs: []int32{0},
		MaxQueueDelayUs: 2000, Layout: LayoutPython, Version: 1}
}

// relFiles lists the files under root, relative and sorted.
func relFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			r, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(r))
		}
		return nil
	})
	sort.Strings(files)
	return files
}

// checkGolden compares every config.pbtxt with its golden as messages
// (protobuf text output is deliberately not byte-stable) and the file list
// byte for byte.
func checkGolden(t *testing.T, dir string, res *RepoResult) {
	t.Helper()
	gdir := filepath.Join(goldenDir, dir)
	files := strings.Join(relFiles(t, res.Root), "\n") + "\n"
	if *update {
		os.MkdirAll(gdir, 0o755)
		os.WriteFile(filepath.Join(gdir, "files.golden"), []byte(files), 0o644)
	}
	want, err := os.ReadFile(filepath.Join(gdir, "files.golden"))
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != files {
		t.Errorf("files:\n%s\nwant:\n%s", files, want)
	}
	for _, m := range res.Models {
		got, err := os.ReadFile(filepath.Join(res.Root, m, "config.pbtxt"))
		if err != nil {
			t.Fatal(err)
		}
		gpath := filepath.Join(gdir, m+".pbtxt")
		if *update {
			os.WriteFile(gpath, got, 0o644)
		}
		wantText, err := os.ReadFile(gpath)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		g, err1 := tritonpb.ParseConfig(got)
		w, err2 := tritonpb.ParseConfig(wantText)
		if err1 != nil || err2 != nil {
			t.Fatalf("parse: %v / %v", err1, err2)
		}
		if !proto.Equal(g, w) {
			t.Errorf("%s/config.pbtxt differs from %s:\n%s", m, gpath, got)
		}
	}
}

func TestWriteRepositoryGoldens(t *testing.T) {
	cases := []struct {
		golden    string
		mutate    func(t *testing.T, o *RepoOptions)
		inputType string
	}{
		{"python-trt8-onnx", func(t *testing.T, o *RepoOptions) {
			o.Engine = fakeEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64)
			o.ONNX = filepath.Join(tinyDir, "model.onnx")
		}, ""},
		{"python-cpu-onnx-only", func(t *testing.T, o *RepoOptions) {
			o.Kind, o.GPUs, o.Instances = "cpu", nil, 1
			o.ONNX = filepath.Join(tinyDir, "dynamo", "model.onnx")
		}, ""},
		{"ensemble-trt10", func(t *testing.T, o *RepoOptions) {
			o.Layout = LayoutEnsemble
			o.Engine = fakeEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64)
		}, "int64"},
		{"ensemble-trt8", func(t *testing.T, o *RepoOptions) {
			o.Layout, o.Version = LayoutEnsemble, 3
			o.Engine = fakeEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64)
			o.ONNX = filepath.Join(tinyDir, "model.onnx")
		}, "int32"},
		{"ensemble-onnxruntime", func(t *testing.T, o *RepoOptions) {
			o.Layout, o.Kind, o.GPUs = LayoutEnsemble, "cpu", nil
			o.ONNX = filepath.Join(tinyDir, "model.onnx")
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			o := baseOptions(t)
			c.mutate(t, &o)
			res, err := WriteRepository(o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dim != 64 || res.InputDType != c.inputType {
				t.Fatalf("dim %d, engine input dtype %q", res.Dim, res.InputDType)
			}
			checkGolden(t, c.golden, res)
			compiled := 0
			for _, ch := range res.Checks {
				if strings.Contains(ch, "model.py") {
					compiled++
				}
			}
			if compiled == 0 {
				t.Fatalf("no model.py check in %q", res.Checks)
			}
		})
	}
}

func TestWriteRepositoryRefusals(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(t *testing.T, o *RepoOptions)
		want   string
	}{
		{"max batch above the engine's profile", func(t *testing.T, o *RepoOptions) {
			o.Engine = fakeEngine(t, convert.TRTVersion{Major: 8, Minor: 6}, 16)
		}, "exceeds the engine's max profile batch 16"},
		{"width disagrees with the model", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.ONNX, o.Dim = fakeEngine(t, convert.TRTVersion{Major: 10}, 64), filepath.Join(tinyDir, "model.onnx"), 768
		}, "disagrees with the model's hidden size 64"},
		{"width unknown", func(t *testing.T, o *RepoOptions) {
			o.Engine = filepath.Join(tinyDir, "vocab.txt") // any file without metadata
		}, "cannot tell the embedding width"},
		{"python layout on GPU without engine", func(t *testing.T, o *RepoOptions) {
			o.ONNX = filepath.Join(tinyDir, "model.onnx")
		}, "needs --engine"},
		{"missing vocabulary", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.Vocab = fakeEngine(t, convert.TRTVersion{Major: 10}, 64), "/nonexistent/vocab.txt"
		}, "no such file"},
		{"python layout on CPU without ONNX", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.Kind = fakeEngine(t, convert.TRTVersion{Major: 10}, 64), "cpu"
		}, "pass --onnx"},
		{"TensorRT plan on CPU instances", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.Kind, o.Layout = fakeEngine(t, convert.TRTVersion{Major: 10}, 64), "cpu", LayoutEnsemble
		}, "GPU instances only"},
		{"unknown layout", func(t *testing.T, o *RepoOptions) { o.Layout = "flat" }, "want python or ensemble"},
		{"unknown kind", func(t *testing.T, o *RepoOptions) { o.Kind = "tpu" }, "want gpu or cpu"},
		{"no instances", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.Instances = fakeEngine(t, convert.TRTVersion{Major: 10}, 64), 0
		}, "at least 1"},
		{"max length above engine's profile", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.MaxLength = fakeEngine(t, convert.TRTVersion{Major: 10}, 64), 400
		}, "exceeds what the model/engine takes (256)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := baseOptions(t)
			c.mutate(t, &o)
			_, err := WriteRepository(o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestValidateCatchesDamage(t *testing.T) {
	o := baseOptions(t)
	o.Layout = LayoutEnsemble
	o.Engine = fakeEngine(t, convert.TRTVersion{Major: 10}, 64)
	facts, _, err := gatherFacts(o)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		damage func(plan []*plannedModel, root string)
		want   string
	}{
		{"config edited by hand", func(plan []*plannedModel, root string) {
			p := filepath.Join(root, "m3e-base-trt_pooling", "config.pbtxt")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, []byte("\ndefault_model_filename: \"other.py\"\n")...), 0o644)
		}, "does not read back"},
		{"config unparsable", func(plan []*plannedModel, root string) {
			os.WriteFile(filepath.Join(root, "m3e-base-trt", "config.pbtxt"), []byte("name: {"), 0o644)
		}, "parse model config"},
		{"engine missing", func(plan []*plannedModel, root string) {
			os.Remove(filepath.Join(root, "m3e-base-trt_engine", "1", "model.plan"))
		}, "model.plan is missing"},
		{"model.py broken", func(plan []*plannedModel, root string) {
			os.WriteFile(filepath.Join(root, "m3e-base-trt_tokenizer", "1", "model.py"), []byte("def broken(:\n"), 0o644)
		}, "does not compile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := exec.LookPath("python3"); err != nil && c.want == "does not compile" {
				t.Skip("no python3")
			}
			o := o
			o.Out = filepath.Join(t.TempDir(), "repo")
			plan := ensembleLayout(o, facts)
			w := &writer{root: o.Out, res: &RepoResult{}}
			for _, m := range plan {
				if err := w.model(m); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Validate(o.Out, plan, facts); err != nil {
				t.Fatalf("intact repository: %v", err)
			}
			c.damage(plan, o.Out)
			_, err := Validate(o.Out, plan, facts)
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(strings.Join(ve.Problems, "\n"), c.want) {
				t.Fatalf("err = %v, want a problem containing %q", err, c.want)
			}
		})
	}
}

func TestCheckEnsembleWiring(t *testing.T) {
	o := baseOptions(t)
	o.Layout = LayoutEnsemble
	o.Engine = fakeEngine(t, convert.TRTVersion{Major: 10}, 64)
	facts, _, err := gatherFacts(o)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		damage func(steps []*tritonpb.ModelEnsembling_Step)
		want   string
	}{
		{"intact", func([]*tritonpb.ModelEnsembling_Step) {}, ""},
		{"step reads a tensor nobody writes", func(s []*tritonpb.ModelEnsembling_Step) { s[2].InputMap["attention_mask"] = "nowhere" }, "produced by no earlier step"},
		{"step names a missing model", func(s []*tritonpb.ModelEnsembling_Step) { s[1].ModelName = "ghost" }, "not in the repository"},
		{"step maps a tensor the model lacks", func(s []*tritonpb.ModelEnsembling_Step) { s[0].OutputMap["token_type_ids"] = "x" }, "has no output token_type_ids"},
		{"ensemble output never produced", func(s []*tritonpb.ModelEnsembling_Step) { s[2].OutputMap = map[string]string{"embeddings": "other"} }, "output embeddings is produced by no step"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan := ensembleLayout(o, facts)
			models := map[string]*tritonpb.ModelConfig{}
			for _, m := range plan {
				models[m.cfg.Name] = m.cfg
			}
			ens := plan[3].cfg
			c.damage(ens.GetEnsembleScheduling().Step)
			problems := strings.Join(checkEnsemble(ens, ens.GetEnsembleScheduling(), models), "\n")
			if c.want == "" && problems != "" || !strings.Contains(problems, c.want) {
				t.Fatalf("problems %q, want %q", problems, c.want)
			}
		})
	}
}
