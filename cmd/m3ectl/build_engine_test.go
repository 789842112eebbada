package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/internal/testmodels"
)

// runTRTCmd runs one m3ectl command line and returns stdout, stderr and the
// error main would print.
func runTRTCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// pooledONNX is the fixture with a pooling head (embeddings [batch, 64]),
// the encoder a Triton repository takes.
func pooledONNX(t *testing.T) string {
	t.Helper()
	p, err := testmodels.PooledOnce(absTestdata(t, "m3e-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	testmodels.Remove()
	os.Exit(code)
}

func absTestdata(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("../../testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildEngineDryRunGolden(t *testing.T) {
	root := absTestdata(t, "")
	for _, fake := range []string{"trtexec-8.6", "trtexec-10"} {
		t.Run(fake, func(t *testing.T) {
			out, _, err := runTRTCmd(t, "build-engine", "--onnx", filepath.Join(root, "m3e-tiny/model.onnx"), "--engine", "/models/m3e tiny.plan",
				"--min", "1x1", "--opt", "16x128", "--max", "64x512", "--fp16", "--workspace", "2048", "--opt-level", "5",
				"--timing-cache", "/models/timing.cache", "--trtexec", filepath.Join(root, "fake-trtexec", fake), "--dry-run", "--", "--noTF32")
			if err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(out, root, "$TESTDATA")
			golden := filepath.Join(root, "triton/cli", "dry-run-"+fake+".golden")
			if os.Getenv("M3ECTL_UPDATE_GOLDEN") != "" {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (set M3ECTL_UPDATE_GOLDEN=1)", err)
			}
			if got != string(want) {
				t.Fatalf("dry run:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestBuildEngineCommandFailures(t *testing.T) {
	root := absTestdata(t, "")
	cases := []struct {
		name       string
		env        string
		args       []string
		wantErr    string
		wantStderr []string
	}{
		{"trtexec failure shows [E] lines and the FAILED banner", "build", nil, "trtexec build failed: exit status 1",
			[]string{"[E] Error[2]", "OutOfMemory", "&&&& FAILED TensorRT.trtexec [TensorRT v8601]"}},
		{"profile refused before running", "", []string{"--max", "64x1024"}, "exceeds the model's 512 positions", nil},
		{"stray positional argument", "", []string{"extra"}, "trtexec arguments go after --", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("M3ECTL_FAKE_TRT_FAIL", c.env)
			args := append([]string{"build-engine", "--onnx", filepath.Join(root, "m3e-tiny/model.onnx"),
				"--engine", filepath.Join(t.TempDir(), "m.plan"), "--trtexec", filepath.Join(root, "fake-trtexec/trtexec-8.6")}, c.args...)
			_, stderr, err := runTRTCmd(t, args...)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, c.wantErr)
			}
			for _, s := range c.wantStderr {
				if !strings.Contains(stderr, s) {
					t.Fatalf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestRepoAndVerifyCommands(t *testing.T) {
	root := absTestdata(t, "")
	dir := t.TempDir()
	engine := filepath.Join(dir, "m.plan")
	fake := filepath.Join(root, "fake-trtexec/trtexec-10")
	pooled := pooledONNX(t)
	if _, _, err := runTRTCmd(t, "build-engine", "--onnx", pooled, "--engine", engine,
		"--min", "1x1", "--opt", "8x64", "--max", "16x128", "--trtexec", fake, "--no-verify"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runTRTCmd(t, "verify-engine", engine, "--trtexec", fake)
	if err != nil || !strings.Contains(out, "deserialises on TensorRT 10.3.0") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "bad.plan"), []byte("garbage"), 0o644)
	if _, _, err := runTRTCmd(t, "verify-engine", filepath.Join(dir, "bad.plan"), "--trtexec", fake); err == nil || !strings.Contains(err.Error(), "Magic tag does not match") {
		t.Fatalf("corrupt engine: %v", err)
	}
	repoDir := filepath.Join(dir, "model_repository")
	out, _, err = runTRTCmd(t, "repo", "--name", "m3e-base-trt", "--out", repoDir, "--engine", engine,
		"--onnx", pooled, "--vocab", filepath.Join(root, "m3e-tiny/vocab.txt"), "--max-batch-size", "16", "--json")
	if err != nil || !strings.Contains(out, `"dim": 64`) {
		t.Fatalf("repo: %v\n%s", err, out)
	}
	_, _, err = runTRTCmd(t, "repo", "--name", "m3e-base-trt", "--out", repoDir, "--engine", engine, "--vocab", filepath.Join(root, "m3e-tiny/vocab.txt"))
	if err == nil || !strings.Contains(err.Error(), "exceeds the engine's max profile batch 16") {
		t.Fatalf("repo with default max batch 32 over an engine of 16: %v", err)
	}
}
