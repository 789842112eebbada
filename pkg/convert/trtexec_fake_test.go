package convert

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	gofakeOnce sync.Once
	gofakeDir  string
	gofakeErr  error
)

// computingFake builds testdata/fake-trtexec/gofake once per test binary
// and returns DIR/tensorrt-VERSION/trtexec, the fake that behaves as that
// TensorRT version and computes real outputs through ONNX Runtime.
func computingFake(t *testing.T, version string) string {
	t.Helper()
	if _, err := ortLibrary(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	gofakeOnce.Do(func() {
		gofakeDir, gofakeErr = os.MkdirTemp("", "gofake-")
		if gofakeErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(gofakeDir, "trtexec"), "../../testdata/fake-trtexec/gofake").CombinedOutput()
		if err != nil {
			gofakeErr = errors.New(string(out))
		}
	})
	if gofakeErr != nil {
		t.Fatalf("build the computing fake: %v", gofakeErr)
	}
	dir := filepath.Join(gofakeDir, "tensorrt-"+version)
	exe := filepath.Join(dir, "trtexec")
	if _, err := os.Stat(exe); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(gofakeDir, "trtexec"), exe); err != nil {
			t.Fatal(err)
		}
	}
	return exe
}

// TestBuildAndVerifyOnEveryTensorRT builds the tiny model with each
// version's fake, then verifies the engine against ONNX Runtime: the fake
// computes the engine's outputs from the ONNX it was built from, so parity
// is real arithmetic, and on 11 the engine is the fp16 AutoCast's.
func TestBuildAndVerifyOnEveryTensorRT(t *testing.T) {
	cases := []struct {
		version  string
		mutate   func(*BuildRequest)
		argvHas  []string
		argvNot  []string
		dtype    string // the engine's input dtype
		pooled   bool
		typed    bool // binding lines carry the type (10.16+)
		fromFP16 bool // built from the AutoCast ONNX
	}{
		{version: "8.6.1", argvHas: []string{"--fp16", "--memPoolSize=workspace:1024 ", "--skipInference"}, dtype: "int32"},
		{version: "10.0.0", argvHas: []string{"--fp16", "--memPoolSize=workspace:1024 "}, dtype: "int64"},
		{version: "10.3.0", mutate: func(r *BuildRequest) { r.Pooling, r.Normalize = "mean", true }, argvHas: []string{"--fp16", ".pooled.onnx"}, dtype: "int64", pooled: true},
		{version: "10.16.0", dtype: "int64", typed: true, argvHas: []string{"--fp16"}},
		{version: "11.1.0", argvNot: []string{"--fp16", "--stronglyTyped"}, argvHas: []string{".fp16.onnx", "--memPoolSize=workspace:1024 "}, dtype: "int64", typed: true, fromFP16: true},
		{version: "11.0.0", mutate: func(r *BuildRequest) { r.Pooling, r.Normalize = "mean", true },
			argvNot: []string{"--fp16"}, argvHas: []string{".pooled.fp16.onnx"}, dtype: "int64", typed: true, pooled: true, fromFP16: true},
	}
	for _, c := range cases {
		t.Run(c.version, func(t *testing.T) {
			dir := t.TempDir()
			argvFile := filepath.Join(dir, "argv")
			t.Setenv("M3ECTL_FAKE_TRT_ARGV", argvFile)
			onnx := filepath.Join(dir, "model.onnx")
			copyFile(t, filepath.Join(tinyDir, "model.onnx"), onnx)
			copyFile(t, filepath.Join(tinyDir, "vocab.txt"), filepath.Join(dir, "vocab.txt"))
			req := BuildRequest{ONNX: onnx, Engine: filepath.Join(dir, "m.plan"), Min: "1x1", Opt: "8x64", Max: "32x256",
				FP16: true, WorkspaceMiB: 1024, OptLevel: -1, Trtexec: computingFake(t, c.version)}
			if c.mutate != nil {
				c.mutate(&req)
			}
			res, err := BuildEngine(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(argvFile)
			argv := string(raw) + " "
			for _, s := range c.argvHas {
				if !strings.Contains(argv, s) {
					t.Errorf("trtexec argv lacks %q: %s", s, argv)
				}
			}
			for _, s := range c.argvNot {
				if strings.Contains(argv, s+" ") || strings.Contains(argv, s+"\n") {
					t.Errorf("trtexec argv has %q: %s", s, argv)
				}
			}
			meta, err := ReadEngineMeta(res.Engine)
			if err != nil || meta == nil {
				t.Fatalf("meta: %v", err)
			}
			if meta.InputDType("input_ids") != c.dtype || meta.Pooled != c.pooled || meta.StronglyTyped != c.fromFP16 {
				t.Errorf("meta %+v", meta)
			}
			if c.pooled && (len(meta.Outputs) != 1 || meta.Outputs[0].Name != EmbeddingsOutput || meta.Outputs[0].DType != "float32" ||
				len(meta.Outputs[0].Dims) != 2 || meta.Outputs[0].Dims[1] != 64) {
				t.Errorf("pooled engine's outputs %+v", meta.Outputs)
			}
			if c.fromFP16 {
				if res.BuiltFrom == "" || meta.SourceONNX != absPath(onnx) || !strings.HasSuffix(meta.ONNX, ".fp16.onnx") {
					t.Errorf("built from %q, meta %s ← %s", res.BuiltFrom, meta.ONNX, meta.SourceONNX)
				}
				r, err := Inspect(meta.ONNX)
				if err != nil || r.ParameterBytes > 3_200_000 {
					t.Errorf("the AutoCast ONNX: %v, %d parameter bytes", err, r.ParameterBytes)
				}
			}
			vr, err := VerifyEngine(context.Background(), VerifyRequest{Engine: res.Engine, Trtexec: req.Trtexec, ONNX: onnx})
			if err != nil {
				t.Fatal(err)
			}
			p := vr.Parity
			t.Logf("TensorRT %s: parity max |Δ| %.3g, min cosine %.7f on %s", vr.TensorRT, p.MaxAbsDiff, p.MinCosine, p.Output)
			if !p.Passed || p.InputDType != c.dtype {
				t.Errorf("parity %+v", p)
			}
			if p.MaxAbsDiff < 1e-5 {
				// Every build here is fp16: the fake computes in fp16, so the
				// engine must not match fp32 ONNX Runtime to its printed digits.
				t.Errorf("max |Δ| %g: an fp16 engine matched fp32 exactly", p.MaxAbsDiff)
			}
			if c.pooled != (p.Output == EmbeddingsOutput) {
				t.Errorf("compared %q", p.Output)
			}
			typed := 0
			for _, b := range vr.Bindings {
				if b.DType != "" {
					typed++
					if b.Name == "input_ids" && b.DType != c.dtype {
						t.Errorf("binding %+v", b)
					}
				}
			}
			if c.typed != (typed > 0) || len(vr.Bindings) < 3 {
				t.Errorf("bindings %+v", vr.Bindings)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTensorRT11Refusals: what TensorRT 11's trtexec no longer has is
// refused before it runs, or by the fake exactly as trtexec.cpp refuses it.
func TestTensorRT11Refusals(t *testing.T) {
	fake := computingFake(t, "11.1.0")
	dir := t.TempDir()
	argvFile := filepath.Join(dir, "argv")
	t.Setenv("M3ECTL_FAKE_TRT_ARGV", argvFile)
	base := BuildRequest{ONNX: filepath.Join(tinyDir, "model.onnx"), Engine: filepath.Join(dir, "m.plan"), Min: "1x1", Opt: "8x64", Max: "32x256", OptLevel: -1, Trtexec: fake}

	r := base
	r.INT8 = true
	_, err := BuildEngine(context.Background(), r)
	if !errors.Is(err, ErrStronglyTypedOnly) || !strings.Contains(err.Error(), "--int8") {
		t.Fatalf("--int8 on 11: %v", err)
	}
	if raw, _ := os.ReadFile(argvFile); strings.Contains(string(raw), "--onnx") {
		t.Fatalf("trtexec ran a build: %s", raw)
	}

	r = base
	r.Extra = []string{"--fp16"}
	_, err = BuildEngine(context.Background(), r)
	var te *TrtexecError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "Unknown option: --fp16") {
		t.Fatalf("--fp16 passed through to trtexec 11: %v", err)
	}

	r = base
	t.Setenv("M3ECTL_FAKE_TRT_FAIL", "fatal")
	_, err = BuildEngine(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "Cuda Runtime (out of memory)") {
		t.Fatalf("[F] line not surfaced: %v", err)
	}
}

func TestDryRunWithoutTrtexec(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("TRTEXEC", "")
	base := BuildRequest{ONNX: filepath.Join(tinyDir, "model.onnx"), Engine: filepath.Join(t.TempDir(), "m.plan"), Min: "1x1", Opt: "8x64", Max: "32x256",
		FP16: true, WorkspaceMiB: 2048, OptLevel: -1, DryRun: true}
	if _, err := os.Stat(DefaultTrtexecPath); err == nil {
		t.Skip("a real trtexec is installed")
	}
	res, err := BuildEngine(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if res.TensorRT != "11.1.0" || strings.Contains(res.Shell, "--fp16") || !strings.Contains(res.Shell, ".fp16.onnx") || !strings.Contains(res.Notes[0], "the newest") {
		t.Fatalf("dry run: %s %s %q", res.TensorRT, res.Shell, res.Notes)
	}
	if _, err := os.Stat(res.BuiltFrom); err == nil {
		t.Fatal("a dry run wrote the AutoCast ONNX")
	}
	base.TRTVersion = "10.3"
	if res, err = BuildEngine(context.Background(), base); err != nil || !strings.Contains(res.Shell, "--fp16") || res.TensorRT != "10.3.0" {
		t.Fatalf("--trt-version 10.3: %v %+v", err, res)
	}
	base.TRTVersion = "7.2"
	if _, err = BuildEngine(context.Background(), base); err == nil {
		t.Fatal("TensorRT 7.2 accepted")
	}
}

// TestVerifyPooledExport: an engine built from m3ectl export's pooled graph
// is verified on its embeddings, compared row by row.
func TestVerifyPooledExport(t *testing.T) {
	fake := computingFake(t, "10.16.0")
	dir := t.TempDir()
	onnx := filepath.Join(dir, "model.onnx")
	if _, err := Export(filepath.Join(tinyDir, "hf"), ExportOptions{Out: onnx}); err != nil {
		t.Fatal(err)
	}
	res, err := BuildEngine(context.Background(), BuildRequest{ONNX: onnx, Engine: filepath.Join(dir, "m.plan"), Min: "1x1", Opt: "8x64", Max: "32x256", OptLevel: -1, Trtexec: fake})
	if err != nil {
		t.Fatal(err)
	}
	vr, err := VerifyEngine(context.Background(), VerifyRequest{Engine: res.Engine, Trtexec: fake, ONNX: onnx})
	if err != nil {
		t.Fatal(err)
	}
	if vr.Parity.Output != EmbeddingsOutput || vr.Parity.MaxAbsDiff > 1e-5 || !vr.Meta.Pooled {
		t.Fatalf("parity %+v, meta pooled %v", vr.Parity, vr.Meta.Pooled)
	}
	var out *Binding
	for i, b := range vr.Bindings {
		if !b.Input {
			out = &vr.Bindings[i]
		}
	}
	if out == nil || out.Name != EmbeddingsOutput || out.Dims != "8x64" || out.DType != "fp32" {
		t.Fatalf("output binding %+v", out)
	}
}
