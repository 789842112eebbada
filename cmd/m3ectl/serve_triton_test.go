package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeTritonCommand(t *testing.T) {
	root := absTestdata(t, "")
	dir := t.TempDir()
	fakeServer := filepath.Join(dir, "tritonserver")
	if out, err := exec.Command("go", "build", "-o", fakeServer, "../../testdata/fake-tritonserver").CombinedOutput(); err != nil {
		t.Fatalf("build fake tritonserver: %v\n%s", err, out)
	}
	engine := filepath.Join(dir, "m.plan")
	if _, _, err := runTRTCmd(t, "build-engine", "--onnx", pooledONNX(t), "--engine", engine,
		"--min", "1x1", "--opt", "8x64", "--max", "32x256", "--trtexec", filepath.Join(root, "fake-trtexec/trtexec-8.6"), "--no-verify"); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "model_repository")
	if _, _, err := runTRTCmd(t, "repo", "--name", "m3e-base-trt", "--out", repo, "--engine", engine, "--vocab", filepath.Join(root, "m3e-tiny/vocab.txt")); err != nil {
		t.Fatal(err)
	}

	t.Run("launches, waits for ready, stops on cancel with exit 0", func(t *testing.T) {
		argv := filepath.Join(t.TempDir(), "argv")
		t.Setenv("M3ECTL_FAKE_TRITON_ARGV", argv)
		ports := make([]int, 3)
		for i := range ports {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ports[i] = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := newRootCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs([]string{"serve", "--tritonserver", fakeServer, "--model-repository", repo, "--load-model", "m3e-base-trt",
			"--http-port", fmt.Sprint(ports[0]), "--grpc-port", fmt.Sprint(ports[1]), "--metrics-port", fmt.Sprint(ports[2])})
		done := make(chan error, 1)
		go func() { done <- cmd.ExecuteContext(ctx) }()
		url := fmt.Sprintf("http://127.0.0.1:%d/v2/models/m3e-base-trt/ready", ports[0])
		for {
			if resp, err := http.Get(url); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case err := <-done:
				t.Fatalf("serve --triton ended early: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("serve --triton: %v", err)
		}
		got, _ := os.ReadFile(argv)
		if !strings.Contains(string(got), "--model-control-mode=explicit --load-model=m3e-base-trt") {
			t.Fatalf("tritonserver got %q", got)
		}
	})
	t.Run("no tritonserver: one clear line", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, _, err := runTRTCmd(t, "serve", "--triton", "--model-repository", repo)
		if err == nil || !strings.Contains(err.Error(), "tritonserver not found") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("image whose TensorRT differs from the engine's: refused in one line naming the image to use", func(t *testing.T) {
		_, _, err := runTRTCmd(t, "serve", "--triton-image", "nvcr.io/nvidia/tritonserver:26.06-py3", "--model-repository", repo)
		if err == nil || !strings.Contains(err.Error(), "use nvcr.io/nvidia/tritonserver:24.04-py3") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v", err)
		}
		// --force gets past the check (and then needs docker, which is not here).
		t.Setenv("PATH", t.TempDir())
		_, _, err = runTRTCmd(t, "serve", "--triton-image", "nvcr.io/nvidia/tritonserver:26.06-py3", "--force", "--model-repository", repo)
		if err == nil || !strings.Contains(err.Error(), "needs docker") {
			t.Fatalf("forced: err = %v", err)
		}
	})
}
