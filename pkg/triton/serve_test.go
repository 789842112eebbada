package triton

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m3ectl/m3ectl/pkg/convert"
	_ "github.com/m3ectl/m3ectl/pkg/engine/onnxrt" // registers the "cpu" backend
	"github.com/m3ectl/m3ectl/pkg/serve"
	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

type refCase struct {
	Text      string    `json:"text"`
	Embedding []float32 `json:"embedding"`
}

// TestGeneratedRepositoryServedByM3ectl writes the article's repository
// (python layout, engine + --onnx) and serves it with m3ectl's own server
// (pkg/serve over the model repository, ONNX Runtime on the CPU, explicit
// mode as in the article): the article's request (one "text" BYTES tensor of
// shape [1, 1]) and a request with several texts get the reference
// embeddings within 1e-5 over KServe v2 HTTP.
func TestGeneratedRepositoryServedByM3ectl(t *testing.T) {
	if os.Getenv("ONNXRUNTIME_LIB") == "" {
		if _, err := os.Stat("../../third_party/onnxruntime/libonnxruntime.so"); err != nil {
			t.Skip("ONNX Runtime not set up (scripts/setup-ort.sh)")
		}
		t.Setenv("ONNXRUNTIME_LIB", mustAbs(t, "../../third_party/onnxruntime/libonnxruntime.so"))
	}
	o := baseOptions(t)
	o.Engine = fakeEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64)
	o.ONNX = filepath.Join(tinyDir, "model.onnx")
	if _, err := WriteRepository(o); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	mgr, err := repository.New(repository.Config{Root: o.Out, ControlMode: "explicit", StartupModels: []string{o.Name},
		Engine: "cpu", Truncate: true, Registerer: reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(mgr, serve.Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Gatherer: reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + srv.HTTPAddr()
	if err := waitReady200(base+"/v2/health/ready", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	model, err := mgr.Model(o.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	if model.Dim() != 64 || model.InputName() != InputName || model.OutputName() != OutputName || model.MaxBatchSize() != 32 {
		t.Fatalf("served model: dim %d, %s → %s, max batch %d", model.Dim(), model.InputName(), model.OutputName(), model.MaxBatchSize())
	}

	var ref struct{ Cases []refCase }
	b, err := os.ReadFile(filepath.Join(tinyDir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		rows []refCase
	}{
		{"the article's request: one text, shape [1, 1]", ref.Cases[:1]},
		{"several texts in one request", ref.Cases[1:5]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			texts := make([]string, len(c.rows))
			for i, r := range c.rows {
				texts[i] = r.Text
			}
			body, _ := json.Marshal(map[string]any{
				"inputs":  []any{map[string]any{"name": "text", "datatype": "BYTES", "shape": []int{len(texts), 1}, "data": texts}},
				"outputs": []any{map[string]any{"name": "embeddings"}},
			})
			resp, err := http.Post(base+"/v2/models/"+o.Name+"/infer", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			var out struct {
				ModelName string `json:"model_name"`
				Outputs   []struct {
					Name     string    `json:"name"`
					Datatype string    `json:"datatype"`
					Shape    []int     `json:"shape"`
					Data     []float32 `json:"data"`
				} `json:"outputs"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Outputs) != 1 || out.Outputs[0].Name != "embeddings" || out.Outputs[0].Datatype != "FP32" ||
				fmt.Sprint(out.Outputs[0].Shape) != fmt.Sprint([]int{len(texts), 64}) {
				t.Fatalf("response %s", raw)
			}
			for i, r := range c.rows {
				for k, want := range r.Embedding {
					if d := math.Abs(float64(out.Outputs[0].Data[i*64+k] - want)); d > 1e-5 {
						t.Fatalf("text %q component %d off by %g", r.Text, k, d)
					}
				}
			}
		})
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitReady200(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", url, timeout)
}
