package convert

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// updating reports whether -update (declared by the package's inspect
// tests) asks for golden files to be rewritten.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const (
	fake86  = "../../testdata/fake-trtexec/trtexec-8.6"
	fake10  = "../../testdata/fake-trtexec/trtexec-10"
	tinyDir = "../../testdata/m3e-tiny"
)

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("../../testdata/triton/trtexec", name)
	if updating() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Fatalf("%s differs:\n got: %s\nwant: %s", name, got, want)
	}
}

func TestParseBanner(t *testing.T) {
	cases := []struct {
		line string
		want TRTVersion
		ok   bool
	}{
		{"&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=a", TRTVersion{8, 6, 1}, true},
		{"&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec", TRTVersion{10, 3, 0}, true},
		{"&&&& PASSED TensorRT.trtexec [TensorRT v8205]", TRTVersion{8, 2, 5}, true},
		{"&&&& RUNNING TensorRT.trtexec [TensorRT v101300]", TRTVersion{10, 13, 0}, true},
		{"[I] TensorRT version: 8.6.1", TRTVersion{}, false},
		{"", TRTVersion{}, false},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, ok := ParseBanner(c.line)
			if ok != c.ok || got != c.want {
				t.Fatalf("ParseBanner = %v, %v; want %v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func FuzzParseBanner(f *testing.F) {
	f.Add("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec")
	f.Add("[TensorRT v100300]")
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseBanner(s)
		if ok && (v.Major < 0 || v.Minor < 0 || v.Minor > 99 || v.Patch < 0 || v.Patch > 99) {
			t.Fatalf("%q → %v", s, v)
		}
	})
}

func tinyProfile(t *testing.T) *ShapeProfile {
	t.Helper()
	p, err := NewShapeProfile(bertInputs(), mustArg(t, "1x1"), mustArg(t, "16x128"), mustArg(t, "64x512"), 512)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShellQuote(t *testing.T) {
	got := ShellQuote([]string{"trtexec", "--onnx=/a b/m.onnx", "it's", "", "--x=a:1x1,b:2x2"})
	want := `trtexec '--onnx=/a b/m.onnx' 'it'\''s' '' --x=a:1x1,b:2x2`
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestFindTrtexec(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("TRTEXEC", "")
	if _, err := os.Stat(DefaultTrtexecPath); err == nil {
		t.Skip("a real trtexec is installed")
	}
	if _, err := FindTrtexec(""); !errors.Is(err, ErrTrtexecNotFound) {
		t.Fatalf("err = %v, want ErrTrtexecNotFound", err)
	}
	abs, _ := filepath.Abs(fake10)
	t.Setenv("TRTEXEC", abs)
	if p, err := FindTrtexec(""); err != nil || p != abs {
		t.Fatalf("$TRTEXEC: %q, %v", p, err)
	}
	if _, err := FindTrtexec("/nonexistent/trtexec"); err == nil {
		t.Fatal("explicit missing path accepted")
	}
}

// buildWithFake builds the tiny model's engine with a fake trtexec and
// returns the result and the argv lines the fake recorded.
func buildWithFake(t *testing.T, fake string, mutate func(*BuildRequest)) (*BuildResult, []string, error) {
	t.Helper()
	dir := t.TempDir()
	argv := filepath.Join(dir, "argv")
	t.Setenv("M3ECTL_FAKE_TRT_ARGV", argv)
	req := BuildRequest{ONNX: filepath.Join(tinyDir, "model.onnx"), Engine: filepath.Join(dir, "m.plan"),
		Min: "1x1", Opt: "8x64", Max: "32x256", FP16: true, WorkspaceMiB: 1024, OptLevel: -1, Trtexec: fake}
	if mutate != nil {
		mutate(&req)
	}
	res, err := BuildEngine(context.Background(), req)
	raw, _ := os.ReadFile(argv)
	return res, strings.Split(strings.TrimSpace(string(raw)), "\n"), err
}

func TestBuildEngineWithFakes(t *testing.T) {
	cases := []struct {
		fake, dtype, pool string
	}{
		{fake86, "int32", "--memPoolSize=workspace:1024 "},
		{fake10, "int64", "--memPoolSize=workspace:1024 "},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.fake), func(t *testing.T) {
			res, argv, err := buildWithFake(t, c.fake, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(argv) != 2 || argv[0] != "--help" {
				t.Fatalf("fake saw %q, want --help then the build", argv)
			}
			if argv[1] != strings.Join(res.Command[1:], " ") {
				t.Fatalf("fake saw %q\nwe planned %q", argv[1], res.Command[1:])
			}
			if !strings.Contains(argv[1]+" ", c.pool) || !strings.Contains(argv[1], "--skipInference") {
				t.Fatalf("flags %q", argv[1])
			}
			meta, err := ReadEngineMeta(res.Engine)
			if err != nil || meta == nil {
				t.Fatalf("meta: %v", err)
			}
			if meta.InputDType("input_ids") != c.dtype || meta.MaxBatch != 32 || meta.MaxSeq != 256 || meta.Hidden != 64 {
				t.Fatalf("meta %+v", meta)
			}
			if st, err := os.Stat(res.LogPath); err != nil || st.Size() == 0 {
				t.Fatalf("no log at %s", res.LogPath)
			}
		})
	}
}

func TestBuildEngineRefusesBeforeRunning(t *testing.T) {
	cases := []struct {
		name          string
		min, opt, max string
		want          string
	}{
		{"min above opt", "16x1", "8x64", "32x256", "min ≤ opt ≤ max"},
		{"opt above max", "1x1", "8x300", "32x256", "min ≤ opt ≤ max"},
		{"zero dimension", "0x1", "8x64", "32x256", "below 1"},
		{"sequence above 512 positions", "1x1", "8x64", "32x513", "exceeds the model's 512 positions"},
		{"unknown input", "input_ids:1x1,attention_mask:1x1,segment:1x1", "8x64", "32x256", "no such input"},
		{"dynamic input without a profile", "input_ids:1x1", "input_ids:8x64", "input_ids:32x256", "attention_mask"},
	}
	t.Run("engine folder missing", func(t *testing.T) {
		_, argv, err := buildWithFake(t, fake10, func(r *BuildRequest) { r.Engine = "/nonexistent/dir/m.plan" })
		if err == nil || !strings.Contains(err.Error(), "does not exist") || len(argv) > 0 && argv[0] != "" {
			t.Fatalf("err = %v, trtexec saw %q", err, argv)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, argv, err := buildWithFake(t, fake10, func(r *BuildRequest) { r.Min, r.Opt, r.Max = c.min, c.opt, c.max })
			var pe *ProfileError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want *ProfileError with %q", err, c.want)
			}
			if len(argv) > 0 && argv[0] != "" {
				t.Fatalf("trtexec ran: %q", argv)
			}
		})
	}
}

func TestBuildEngineDryRun(t *testing.T) {
	res, argv, err := buildWithFake(t, fake86, func(r *BuildRequest) { r.DryRun = true; r.OptLevel = 2 })
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) != 1 || argv[0] != "--help" {
		t.Fatalf("dry run ran more than --help: %q", argv)
	}
	if _, err := os.Stat(res.Engine); err == nil {
		t.Fatal("dry run wrote an engine")
	}
	if !strings.Contains(res.Shell, "--builderOptimizationLevel=2") || !strings.Contains(res.Shell, "--minShapes=input_ids:1x1,attention_mask:1x1") {
		t.Fatalf("shell %s", res.Shell)
	}
	if len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "casts input_ids, attention_mask to INT32") {
		t.Fatalf("notes %q", res.Notes)
	}
}

func TestBuildEngineFailures(t *testing.T) {
	cases := []struct {
		name   string
		env    string
		extra  []string
		fake   string
		reason string
		line   string
	}{
		{"trtexec fails with [E] lines", "build", nil, fake86, "exit status 1", "OutOfMemory"},
		{"PASSED without an engine", "noengine", nil, fake10, "wrote no engine", ""},
		{"--workspace removed in TensorRT 10", "", []string{"--workspace=64"}, fake10, "exit status 1", "Unknown option: --workspace"},
		{"unknown flag", "", []string{"--noSuchFlag"}, fake86, "exit status 1", "Unknown option: --noSuchFlag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("M3ECTL_FAKE_TRT_FAIL", c.env)
			_, _, err := buildWithFake(t, c.fake, func(r *BuildRequest) { r.Extra = c.extra })
			var te *TrtexecError
			if !errors.As(err, &te) || !strings.Contains(te.Reason, c.reason) {
				t.Fatalf("err = %v, want *TrtexecError with reason %q", err, c.reason)
			}
			if c.line == "" {
				return
			}
			joined := strings.Join(te.Lines, "\n")
			if !strings.Contains(joined, c.line) || !strings.Contains(joined, "&&&& FAILED") {
				t.Fatalf("lines %q lack %q and the FAILED banner", te.Lines, c.line)
			}
		})
	}
}

func TestVerifyEngineLoad(t *testing.T) {
	res, _, err := buildWithFake(t, fake10, nil)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(t.TempDir(), "corrupt.plan")
	os.WriteFile(corrupt, []byte("not an engine at all"), 0o644)
	cases := []struct {
		name, engine, fake, want string
	}{
		{"same version loads", res.Engine, fake10, ""},
		{"corrupt engine", corrupt, fake10, "Magic tag does not match"},
		{"engine from another TensorRT version", res.Engine, fake86, "Version tag does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vr, err := VerifyEngine(context.Background(), VerifyRequest{Engine: c.engine, Trtexec: c.fake})
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if vr.TensorRT != "10.3.0" || vr.Meta == nil {
					t.Fatalf("result %+v", vr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// writeFakeOutput computes the hidden states ONNX Runtime gives for the
// parity batch, perturbs them by delta, and writes them in trtexec's
// --exportOutput format for the fake to hand back.
func writeFakeOutput(t *testing.T, engine string, ver TRTVersion, delta float32) string {
	t.Helper()
	if _, err := ortLibrary(""); err != nil {
		t.Skip(err)
	}
	rep, err := Inspect(filepath.Join(tinyDir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := ReadEngineMeta(engine)
	tok := loadTinyTokenizer(t)
	in, err := buildParityInputs(rep, meta, ver, tok, DefaultParitySentences)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ortHiddenStates("", filepath.Join(tinyDir, "model.onnx"), rep, in, "output")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[\n  { \"name\" : \"output\"\n  , \"dimensions\" : \"%dx%dx%d\"\n  , \"values\" : [ ", in.batch, in.seq, len(h)/(in.batch*in.seq))
	for i, v := range h {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%g", v+delta)
	}
	b.WriteString(" ]\n  }\n]\n")
	path := filepath.Join(t.TempDir(), "out.json")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerifyEngineParity(t *testing.T) {
	cases := []struct {
		name  string
		fake  string
		ver   TRTVersion
		delta float32
		pass  bool
		dtype string
	}{
		{"TensorRT 8.6 int32 inputs within tolerance", fake86, TRTVersion{8, 6, 1}, 1e-3, true, "int32"},
		{"TensorRT 10 int64 inputs within tolerance", fake10, TRTVersion{10, 3, 0}, 1e-3, true, "int64"},
		{"engine off by 0.5 fails", fake10, TRTVersion{10, 3, 0}, 0.5, false, "int64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, _, err := buildWithFake(t, c.fake, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv("M3ECTL_FAKE_TRT_OUTPUT", writeFakeOutput(t, res.Engine, c.ver, c.delta))
			vr, err := VerifyEngine(context.Background(), VerifyRequest{Engine: res.Engine, Trtexec: c.fake, ONNX: filepath.Join(tinyDir, "model.onnx")})
			if c.pass && err != nil {
				t.Fatal(err)
			}
			var pe *ParityError
			if !c.pass && !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ParityError", err)
			}
			p := vr.Parity
			if p.InputDType != c.dtype || math.Abs(p.MaxAbsDiff-float64(c.delta)) > 1e-4 || p.Passed != c.pass {
				t.Fatalf("parity %+v", p)
			}
			if len(vr.Bindings) < 3 {
				t.Fatalf("bindings %+v", vr.Bindings)
			}
		})
	}
}

func TestParseTrtexecOutput(t *testing.T) {
	cases := []struct {
		name, in, wantErr string
		n                 int
	}{
		{"trtexec layout", "[\n  { \"name\" : \"output\"\n  , \"dimensions\" : \"1x2x2\"\n  , \"values\" : [ 1, 2, 3, 4 ]\n  }\n, { \"name\" : \"tanh\"\n  , \"dimensions\" : \"1x2\"\n  , \"values\" : [ 0.5, -0.5 ]\n  }\n]", "", 2},
		{"nan and inf become NaN", `[{"name":"o","dimensions":"3","values":[nan, inf, -inf]}]`, "", 1},
		{"value count mismatch", `[{"name":"o","dimensions":"2x2","values":[1]}]`, "values for dimensions", 0},
		{"bad dimensions", `[{"name":"o","dimensions":"2xq","values":[1,2]}]`, "bad dimensions", 0},
		{"not JSON", `{{`, "parse trtexec output", 0},
		{"entry without name", `[{"dimensions":"1","values":[1]}]`, "without a name", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseTrtexecOutput([]byte(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || len(got) != c.n {
				t.Fatalf("got %d tensors, err %v", len(got), err)
			}
		})
	}
}

func FuzzParseTrtexecOutput(f *testing.F) {
	f.Add([]byte(`[{"name":"o","dimensions":"1x2","values":[1, nan]}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := ParseTrtexecOutput(b)
		if err != nil {
			return
		}
		for _, ten := range out {
			vol := int64(1)
			for _, d := range ten.Shape {
				vol *= d
			}
			if vol != int64(len(ten.Values)) {
				t.Fatalf("%s: %d values for %v", ten.Name, len(ten.Values), ten.Shape)
			}
		}
	})
}

// BenchmarkParseTrtexecOutput parses an m3e-base-sized --exportOutput file
// (8 sentences × 32 tokens × 768), what verify-engine reads per parity run.
func BenchmarkParseTrtexecOutput(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[\n  { \"name\" : \"output\"\n  , \"dimensions\" : \"8x32x768\"\n  , \"values\" : [ ")
	for i := 0; i < 8*32*768; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%g", float32(i%1000)/997-0.5)
	}
	sb.WriteString(" ]\n  }\n]\n")
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ParseTrtexecOutput(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestProbeVersionRejectsOtherPrograms(t *testing.T) {
	script := filepath.Join(t.TempDir(), "not-trtexec")
	os.WriteFile(script, []byte("#!/bin/sh\necho usage: something else\n"), 0o755)
	if _, err := ProbeVersion(context.Background(), script); err == nil || !strings.Contains(err.Error(), "no [TensorRT vNNNN] banner") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunTrtexecStopsOnCancel(t *testing.T) {
	script := filepath.Join(t.TempDir(), "slow-trtexec")
	// The trap and the sleep exist before the line that makes the test
	// cancel: a sleep forked after the group's SIGTERM would keep stdout
	// open until WaitDelay (seen once, under load: "exit 143 after 10.01s").
	os.WriteFile(script, []byte("#!/usr/bin/env bash\ntrap 'echo got SIGTERM; exit 143' TERM\nsleep 30 &\necho '&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # slow'\necho '[I] Start parsing network model.'\nwait\n"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	phases := make(chan string, 8)
	go func() {
		for p := range phases {
			if p == "parsing ONNX" {
				cancel()
				return
			}
		}
	}()
	start := time.Now()
	run, err := RunTrtexec(ctx, script, nil, "", Progress{Phase: func(p string, _ time.Duration) { phases <- p }})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second || run.ExitCode != 143 {
		t.Fatalf("exit %d after %s: SIGTERM not delivered", run.ExitCode, time.Since(start))
	}
}
