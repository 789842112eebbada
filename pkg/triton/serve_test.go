package triton

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m3ectl/m3ectl/pkg/convert"
	_ "github.com/m3ectl/m3ectl/pkg/engine/onnxrt" // registers the "cpu" backend
	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

type refCase struct {
	Text      string    `json:"text"`
	Embedding []float32 `json:"embedding"`
}

// TestGeneratedRepositoryServedByM3ectl writes the article's repository
// (python layout, engine + --onnx) and loads it with the model repository
// behind `m3ectl serve --model-repository` on the CPU, in explicit mode like
// the article's Triton: one text (the article's request) and several texts
// get the reference embeddings.
func TestGeneratedRepositoryServedByM3ectl(t *testing.T) {
	if os.Getenv("ONNXRUNTIME_LIB") == "" {
		lib, _ := filepath.Abs("../../third_party/onnxruntime/libonnxruntime.so")
		if _, err := os.Stat(lib); err != nil {
			t.Skip("ONNX Runtime not set up (scripts/setup-ort.sh)")
		}
		t.Setenv("ONNXRUNTIME_LIB", lib)
	}
	o := baseOptions(t)
	o.Engine = fakeEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64)
	o.ONNX = filepath.Join(tinyDir, "model.onnx")
	if _, err := WriteRepository(o); err != nil {
		t.Fatal(err)
	}
	mgr, err := repository.New(repository.Config{Root: o.Out, ControlMode: "explicit", StartupModels: []string{o.Name},
		Engine: "cpu", Truncate: true, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer mgr.Close(context.Background())
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
		{"the article's request: one text", ref.Cases[:1]},
		{"several texts in one request", ref.Cases[1:6]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			texts := make([]string, len(c.rows))
			for i, r := range c.rows {
				texts[i] = r.Text
			}
			res, err := model.Infer(ctx, texts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Embeddings) != len(texts)*64 {
				t.Fatalf("%d floats for %d texts", len(res.Embeddings), len(texts))
			}
			for i, r := range c.rows {
				for k, want := range r.Embedding {
					if d := math.Abs(float64(res.Embeddings[i*64+k] - want)); d > 1e-5 {
						t.Fatalf("text %q component %d off by %g", r.Text, k, d)
					}
				}
			}
		})
	}
}
