package triton

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

// standinEngine writes a "plan" the stand-in tensorrt module deserialises
// (built by TensorRT ver, computed by the pooled fixture graph) and the
// metadata build-engine would record beside it.
func standinEngine(t *testing.T, ver convert.TRTVersion) string {
	t.Helper()
	path := pooledEngine(t, ver, 64)
	widenProfile(t, path, 512)
	meta, err := convert.ReadEngineMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	type tensor struct {
		Name  string  `json:"name"`
		DType string  `json:"dtype"`
		Min   []int64 `json:"min,omitempty"`
		Opt   []int64 `json:"opt,omitempty"`
		Max   []int64 `json:"max,omitempty"`
		Dims  []int64 `json:"dims,omitempty"`
	}
	plan := map[string]any{"m3ectl_fake_trt": ver.String(), "onnx": mustAbs(t, pooledFixture(t)),
		"outputs": []tensor{{Name: "embeddings", DType: "float32", Dims: []int64{-1, 64}}}}
	var ins []tensor
	for _, in := range meta.Inputs {
		ins = append(ins, tensor{Name: in.Name, DType: in.DType, Min: in.Min, Opt: in.Opt, Max: in.Max})
	}
	plan["inputs"] = ins
	b, _ := json.Marshal(plan)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPythonLayoutExecutes runs the article's single model.py (--layout
// python) under CPython against the stand-in pb_utils, tensorrt (the
// named-tensor API only) and cuda-python, with TensorRT set to the version
// requirements.txt pins: embeddings within 1e-5 of reference.json for
// engines of TensorRT 8.6 (int32 inputs), 10.3 and 11.1; under another
// TensorRT the engine does not load and initialize says why.
func TestPythonLayoutExecutes(t *testing.T) {
	t.Parallel() // CPython does the work, in its own processes
	python := debianPython(t)
	ref := readReference(t)
	var texts []string
	for _, c := range ref.Cases {
		texts = append(texts, c.Text)
	}
	for _, ver := range []convert.TRTVersion{{Major: 8, Minor: 6, Patch: 1}, {Major: 10, Minor: 3}, {Major: 11, Minor: 1}} {
		t.Run(ver.String(), func(t *testing.T) {
			o := baseOptions(t)
			o.Name, o.Layout = "m3e-tiny", LayoutPython
			o.Engine = standinEngine(t, ver)
			if _, err := WriteRepository(o); err != nil {
				t.Fatal(err)
			}
			req, err := os.ReadFile(filepath.Join(o.Out, o.Name, "1", Requirements))
			if err != nil {
				t.Fatal(err)
			}
			pin := ""
			for _, line := range strings.Split(string(req), "\n") {
				if v, ok := strings.CutPrefix(line, "tensorrt=="); ok {
					pin = v
				}
			}
			if pin != ver.String() {
				t.Fatalf("requirements.txt pins tensorrt %q, the engine is %s:\n%s", pin, ver, req)
			}
			_, url := startExecServer(t, o.Out)
			job := map[string]any{"model_dir": filepath.Join(o.Out, o.Name), "version": 1, "config": configJSON(t, o.Out, o.Name),
				"instance_kind": "GPU", "batches": [][]map[string]any{{textRequest(texts[0]), textRequest(texts[1:12]...)}, {textRequest(texts[12:30]...)}}}
			var res modelResults
			runModel(t, python, url, job, &res, "M3ECTL_STANDIN_TRT_VERSION="+pin)
			var got [][]float32
			for _, b := range res.Results {
				for _, r := range b {
					if r.Error != "" {
						t.Fatal(r.Error)
					}
					e := r.Outputs["embeddings"]
					for i := 0; i < e.Shape[0]; i++ {
						got = append(got, e.Data[i*64:(i+1)*64])
					}
				}
			}
			worst := 0.0
			for i, c := range ref.Cases {
				d, ok := closeTo(got[i], c.Embedding, 1e-5)
				worst = math.Max(worst, d)
				if !ok {
					t.Errorf("case %d: max |Δ| %.2e", i, d)
				}
			}
			other := "10.3.0"
			if ver.Major == 10 {
				other = "11.1.0"
			}
			_, stderr, err := runModelRaw(python, url, job, "M3ECTL_STANDIN_TRT_VERSION="+other)
			if err == nil || !strings.Contains(stderr, "could not load model.plan: it was built with TensorRT "+pin) {
				t.Fatalf("under TensorRT %s: err %v\n%s", other, err, stderr)
			}
			t.Logf("TensorRT %s: 30 reference texts in 2 executes, max |Δ| %.2e", pin, worst)
		})
	}
}

// TestEnsembleLayoutExecutes runs the ensemble's tokenizer step under
// CPython: every response of one execute is padded to the same bucketed
// length (so that Triton's batcher in front of the encoder can merge them),
// and the encoder step (checked and run by the stand-in server as Triton
// would run it) turns each response into the reference embeddings.
func TestEnsembleLayoutExecutes(t *testing.T) {
	t.Parallel() // CPython does the work, in its own processes
	python := debianPython(t)
	o := baseOptions(t)
	o.Name, o.Layout, o.Encoder, o.ONNX, o.Kind = "m3e-tiny", LayoutEnsemble, EncoderONNX, pooledFixture(t), "cpu"
	if _, err := WriteRepository(o); err != nil {
		t.Fatal(err)
	}
	srv, _ := startExecServer(t, o.Out)
	ref := readReference(t)
	var texts []string
	for _, c := range ref.Cases {
		texts = append(texts, c.Text)
	}
	tok := o.Name + "-tokenizer"
	var res modelResults
	runModel(t, python, "", map[string]any{"model_dir": filepath.Join(o.Out, tok), "version": 1, "config": configJSON(t, o.Out, tok),
		"batches": [][]map[string]any{{textRequest(texts[0]), textRequest(texts[1:4]...)}, {textRequest(texts[4:20]...), textRequest(texts[20:30]...)}}}, &res)
	row := 0
	for bi, b := range res.Results {
		width := -1
		for _, r := range b {
			if r.Error != "" {
				t.Fatal(r.Error)
			}
			ids, mask := r.Outputs["input_ids"], r.Outputs["attention_mask"]
			if width == -1 {
				width = ids.Shape[1]
			}
			if ids.Shape[1] != width || mask.Shape[1] != width {
				t.Fatalf("execute %d: responses padded to %d and %d; the encoder's batcher could not merge them", bi, width, ids.Shape[1])
			}
			if !slices.Contains(padBuckets(512), width) {
				t.Fatalf("execute %d: width %d is not a bucket of %v", bi, width, padBuckets(512))
			}
			n := ids.Shape[0]
			// Send the step's outputs on as the ensemble would.
			enc := execRequest{Model: o.Name + "-encoder", Outputs: []string{"embeddings"}}
			for _, name := range []string{"input_ids", "attention_mask"} {
				out := r.Outputs[name]
				var buf bytes.Buffer
				for _, f := range out.Data {
					binary.Write(&buf, binary.LittleEndian, int64(f))
				}
				enc.Inputs = append(enc.Inputs, wireTensor{Name: name, Datatype: "INT64", Shape: []int64{int64(n), int64(width)}, Data: base64.StdEncoding.EncodeToString(buf.Bytes())})
			}
			outs, err := srv.run(enc)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := base64.StdEncoding.DecodeString(outs[0].Data)
			for i := 0; i < n; i++ {
				got := make([]float32, 64)
				for k := range got {
					got[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[(i*64+k)*4:]))
				}
				if d, ok := closeTo(got, ref.Cases[row].Embedding, 1e-5); !ok {
					t.Errorf("case %d: max |Δ| %.2e", row, d)
				}
				row++
			}
		}
	}
	if row != 30 {
		t.Fatalf("%d rows", row)
	}
}

// TestGeneratedPythonImports audits every model.py the default layout
// (and the ensemble's tokenizer) writes: standard library, numpy and
// triton_python_backend_utils only, which is all the stock image has. The
// python layout's must add exactly tensorrt and cuda-python.
func TestGeneratedPythonImports(t *testing.T) {
	t.Parallel() // CPython does the work, in its own processes
	python := debianPython(t)
	cases := []struct {
		layout string
		set    func(o *RepoOptions)
		model  string
		extra  []string
	}{
		{LayoutBLS, func(o *RepoOptions) { o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64) }, "m3e-base-trt", nil},
		{LayoutEnsemble, func(o *RepoOptions) { o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64) }, "m3e-base-trt-tokenizer", nil},
		{LayoutPython, func(o *RepoOptions) { o.Engine = pooledEngine(t, convert.TRTVersion{Major: 10, Minor: 3}, 64) }, "m3e-base-trt", []string{"tensorrt", "cuda", "cuda.bindings"}},
	}
	for _, c := range cases {
		t.Run(c.layout, func(t *testing.T) {
			o := baseOptions(t)
			o.Layout = c.layout
			c.set(&o)
			if _, err := WriteRepository(o); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Imports []struct{ Module, Kind string }
			}
			runModel(t, python, "", map[string]any{"model_dir": filepath.Join(o.Out, c.model), "version": 1, "imports": true}, &got)
			allowed := map[string]bool{"numpy": true, "triton_python_backend_utils": true}
			for _, e := range c.extra {
				allowed[e] = true
			}
			var mods []string
			for _, im := range got.Imports {
				mods = append(mods, im.Module)
				if im.Kind != "stdlib" && !allowed[im.Module] {
					t.Errorf("%s/model.py imports %s, which the stock Triton image does not have", c.model, im.Module)
				}
			}
			for _, e := range append([]string{"numpy", "triton_python_backend_utils"}, c.extra...) {
				if !slices.Contains(mods, e) {
					t.Errorf("%s/model.py does not import %s (imports %v): the audit is not reading it", c.model, e, mods)
				}
			}
		})
	}
}
