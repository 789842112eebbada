package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestExportThenEmbed is the lifecycle's first step from the command line:
// export the Hugging Face folder, inspect it, embed with it, convert it.
func TestExportThenEmbed(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m3e", "model.onnx")
	out, err := runCmd(t, "export", "--model", filepath.Join("..", "..", "testdata", "m3e-tiny", "hf"), "--out", model)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "output embeddings [batch_size, hidden]: mean pooling + L2 normalisation") {
		t.Errorf("export said %q", out)
	}
	out, err = runCmd(t, "inspect", model)
	if err != nil || !strings.Contains(out, "skip their own pooling") {
		t.Fatalf("inspect: %v %q", err, out)
	}
	out, err = runEmbed(t, "", "--model", filepath.Dir(model), "酒店很好")
	if err != nil {
		t.Fatal(err)
	}
	got := parseLines(t, out)[0].Embedding
	want := []float32{-0.07237306982278824, -0.020871197804808617, -0.09517773240804672}
	for i, w := range want {
		if math.Abs(float64(got[i]-w)) > 1e-5 {
			t.Errorf("embedding[%d] = %v, want %v", i, got[i], w)
		}
	}
	fp16 := filepath.Join(dir, "fp16", "model.onnx")
	os.MkdirAll(filepath.Dir(fp16), 0o755)
	out, err = runCmd(t, "convert", "--onnx", model, "--out", fp16, "--fp16")
	if err != nil || !strings.Contains(out, "kept in fp32") || !strings.Contains(out, "output embeddings float32 [batch_size, 64]") {
		t.Fatalf("convert: %v %q", err, out)
	}
	if _, err := runCmd(t, "convert", "--onnx", model, "--out", model, "--fp16"); err == nil || !strings.Contains(err.Error(), "is the input") {
		t.Fatalf("convert onto its input: %v", err)
	}
}

// TestServeExportedPooledModel: serve takes a graph that pools itself and
// answers the article's request with the reference embedding.
func TestServeExportedPooledModel(t *testing.T) {
	if err := onnxrt.Init(""); err != nil {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	model := filepath.Join(t.TempDir(), "m3e", "model.onnx")
	if _, err := runCmd(t, "export", "--model", filepath.Join("..", "..", "testdata", "m3e-tiny", "hf"), "--out", model); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"serve", "--model", filepath.Dir(model), "--name", "m3e",
		"--host", "127.0.0.1", "--http-port", strconv.Itoa(port), "--grpc-port", "-1", "--metrics-port", "-1", "--threads", "1"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/v2/models/m3e/infer"
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err = http.Post(url, "application/json",
			strings.NewReader(`{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES","data":["酒店很好"]}]}`))
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Outputs []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Outputs) != 1 || len(body.Outputs[0].Data) != 64 {
		t.Fatalf("response %d: %v %+v", resp.StatusCode, err, body)
	}
	for i, w := range []float32{-0.07237306982278824, -0.020871197804808617, -0.09517773240804672} {
		if math.Abs(float64(body.Outputs[0].Data[i]-w)) > 1e-5 {
			t.Errorf("embeddings[%d] = %v, want %v", i, body.Outputs[0].Data[i], w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}
