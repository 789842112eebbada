package triton

import (
	"encoding/json"
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
		MaxQueueDelayUs: 2000, Version: 1}
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
		models    int
	}{
		{"bls-trt10-onnx", func(t *testing.T, o *RepoOptions) {
			o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64)
			o.ONNX = pooledFixture(t)
		}, "int64", 2},
		{"bls-trt8", func(t *testing.T, o *RepoOptions) {
			o.Engine = pooledEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64)
		}, "int32", 2},
		{"bls-onnxruntime-cpu", func(t *testing.T, o *RepoOptions) {
			o.Encoder, o.ONNX, o.Kind, o.GPUs, o.Instances = EncoderONNX, pooledFixture(t), "cpu", nil, 1
		}, "int64", 2},
		{"ensemble-trt10", func(t *testing.T, o *RepoOptions) {
			o.Layout, o.Version = LayoutEnsemble, 3
			o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64)
		}, "int64", 3},
		{"python-trt10", func(t *testing.T, o *RepoOptions) {
			o.Layout = LayoutPython
			o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64)
			o.ONNX = pooledFixture(t)
		}, "int64", 1},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			o := baseOptions(t)
			c.mutate(t, &o)
			res, err := WriteRepository(o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dim != 64 || res.InputDType != c.inputType || len(res.Models) != c.models {
				t.Fatalf("dim %d, encoder input dtype %q, models %v", res.Dim, res.InputDType, res.Models)
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
	trt10 := func(t *testing.T) string { return pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64) }
	cases := []struct {
		name   string
		mutate func(t *testing.T, o *RepoOptions)
		want   string
	}{
		{"max batch above the engine's profile", func(t *testing.T, o *RepoOptions) {
			o.Engine = pooledEngine(t, convert.TRTVersion{Major: 8, Minor: 6}, 16)
		}, "exceeds the engine's max profile batch 16"},
		{"engine without metadata", func(t *testing.T, o *RepoOptions) {
			o.Engine = filepath.Join(tinyDir, "vocab.txt") // any file without metadata
		}, "pass --input-dtype int32"},
		{"engine without metadata, width unknown", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.InputDType = filepath.Join(tinyDir, "vocab.txt"), "int32"
		}, "cannot tell the embedding width"},
		{"unpooled ONNX", func(t *testing.T, o *RepoOptions) {
			o.Encoder, o.ONNX, o.Kind = EncoderONNX, filepath.Join(tinyDir, "model.onnx"), "cpu"
		}, "--pooling mean --normalize"},
		{"unpooled engine", func(t *testing.T, o *RepoOptions) {
			o.Engine = fakeEngine(t, convert.TRTVersion{Major: 10}, 64)
		}, "needs a pooled engine"},
		{"input dtype contradicts the metadata", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.InputDType = trt10(t), "int32"
		}, "contradicts the build metadata"},
		{"tensorrt encoder without engine", func(t *testing.T, o *RepoOptions) {
			o.Encoder, o.ONNX = EncoderTensorRT, pooledFixture(t)
		}, "needs --engine"},
		{"missing vocabulary", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.Vocab = trt10(t), "/nonexistent/vocab.txt"
		}, "no such file"},
		{"TensorRT on CPU instances", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.Kind = trt10(t), "cpu"
		}, "GPU instances only"},
		{"python layout with the onnx encoder", func(t *testing.T, o *RepoOptions) {
			o.Layout, o.Engine, o.Encoder, o.ONNX = LayoutPython, trt10(t), EncoderONNX, pooledFixture(t)
		}, "belongs to the bls and ensemble layouts"},
		{"image ships another TensorRT", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.TritonImage = pooledEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64), "nvcr.io/nvidia/tritonserver:26.06-py3"
		}, "use nvcr.io/nvidia/tritonserver:24.04-py3"},
		{"unknown layout", func(t *testing.T, o *RepoOptions) { o.Layout = "flat" }, "want bls, ensemble or python"},
		{"unknown kind", func(t *testing.T, o *RepoOptions) { o.Kind = "tpu" }, "want gpu or cpu"},
		{"no instances", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.Instances = trt10(t), 0
		}, "at least 1"},
		{"max length above engine's profile", func(t *testing.T, o *RepoOptions) {
			o.Engine, o.MaxLength = trt10(t), 400
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
			if _, serr := os.Stat(o.Out); serr == nil {
				t.Fatalf("a refused repository left %s behind", o.Out)
			}
		})
	}
}

// TestImageForcedWrites: --force turns the image refusal into a note.
func TestImageForcedWrites(t *testing.T) {
	o := baseOptions(t)
	o.Engine = pooledEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64)
	o.TritonImage, o.Force = "nvcr.io/nvidia/tritonserver:26.06-py3", true
	res, err := WriteRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "[forced]") {
		t.Fatalf("notes %q", res.Notes)
	}
}

func TestValidateCatchesDamage(t *testing.T) {
	o := baseOptions(t)
	o.Layout = LayoutEnsemble
	o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10}, 64)
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	facts, _, err := gatherFacts(o)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		damage func(root string)
		want   string
	}{
		{"config edited by hand", func(root string) {
			p := filepath.Join(root, "m3e-base-trt-encoder", "config.pbtxt")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, []byte("\ndefault_model_filename: \"other.plan\"\n")...), 0o644)
		}, "does not read back"},
		{"config unparsable", func(root string) {
			os.WriteFile(filepath.Join(root, "m3e-base-trt", "config.pbtxt"), []byte("name: {"), 0o644)
		}, "parse model config"},
		{"engine missing", func(root string) {
			os.Remove(filepath.Join(root, "m3e-base-trt-encoder", "1", "model.plan"))
		}, "model.plan is missing"},
		{"warmup data missing", func(root string) {
			os.Remove(filepath.Join(root, "m3e-base-trt-encoder", "warmup", "attention_mask_ones"))
		}, "attention_mask_ones is missing"},
		{"model.py broken", func(root string) {
			os.WriteFile(filepath.Join(root, "m3e-base-trt-tokenizer", "1", "model.py"), []byte("def broken(:\n"), 0o644)
		}, "does not compile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := exec.LookPath("python3"); err != nil && c.want == "does not compile" {
				t.Skip("no python3")
			}
			o := o
			o.Out = filepath.Join(t.TempDir(), "repo")
			plan, err := ensembleLayout(o, facts)
			if err != nil {
				t.Fatal(err)
			}
			w := &writer{root: o.Out, res: &RepoResult{}}
			for _, m := range plan {
				if err := w.model(m); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Validate(o.Out, plan, facts); err != nil {
				t.Fatalf("intact repository: %v", err)
			}
			c.damage(o.Out)
			_, err = Validate(o.Out, plan, facts)
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(strings.Join(ve.Problems, "\n"), c.want) {
				t.Fatalf("err = %v, want a problem containing %q", err, c.want)
			}
		})
	}
}

// TestTokenizerConfigHonoured: tokenizer_config.json beside vocab.txt sets
// what the Python tokenizer does (here a cased model), as transformers
// reads it; a tokenizer.json given as --vocab is refused.
func TestTokenizerConfigHonoured(t *testing.T) {
	dir := t.TempDir()
	vocab, _ := os.ReadFile(filepath.Join(tinyDir, "vocab.txt"))
	os.WriteFile(filepath.Join(dir, "vocab.txt"), vocab, 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"do_lower_case": false, "model_max_length": 128}`), 0o644)
	o := baseOptions(t)
	o.Engine, o.Vocab = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64), filepath.Join(dir, "vocab.txt")
	res, err := WriteRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(o.Out, o.Name, "1", TokenizerSpec))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Lower     bool `json:"lower"`
		Strip     bool `json:"strip_accents"`
		MaxLength int  `json:"max_length"`
	}
	json.Unmarshal(b, &spec)
	if spec.Lower || spec.Strip || spec.MaxLength != 128 || res.MaxLength != 128 {
		t.Fatalf("spec %+v, max length %d: want a cased tokenizer truncating at 128", spec, res.MaxLength)
	}
	o = baseOptions(t)
	o.Engine, o.Vocab = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64), filepath.Join(tinyDir, "hf", "tokenizer.json")
	if _, err := WriteRepository(o); err == nil || !strings.Contains(err.Error(), "give the model's vocab.txt") {
		t.Fatalf("tokenizer.json as --vocab: %v", err)
	}
}
