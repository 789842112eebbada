package repository

import (
	"context"
	"math"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
	_ "github.com/m3ectl/m3ectl/pkg/engine/cuda" // KIND_GPU instances run here when a GPU is usable
)

// TestKindGPURunsOnCuda runs on a GPU machine (skipped elsewhere): the
// article's config (KIND_GPU, count 2) under --engine auto puts both
// instances on the cuda engine, which reproduces the reference embeddings
// within fp16 accuracy, through the batcher, concurrently.
func TestKindGPURunsOnCuda(t *testing.T) {
	if err := engine.Available("cuda"); err != nil {
		t.Skipf("no usable GPU: %v", err)
	}
	m := startManager(t, Config{Root: fixture("serve", "model_repository"), Engine: "auto"})
	md, err := m.Model("m3e-base-trt", "")
	if err != nil {
		t.Fatalf("%v; index %+v", err, m.Index(false))
	}
	if md.Backend() != "cuda" {
		t.Fatalf("KIND_GPU instance runs on %s, want cuda", md.Backend())
	}
	cases := reference(t)
	errs := make(chan error, len(cases))
	for _, c := range cases {
		go func(c refCase) {
			res, err := md.Infer(context.Background(), []string{c.Text})
			if err != nil {
				errs <- err
				return
			}
			var dot, na, nb float64
			for j, want := range c.Embedding {
				g := float64(res.Embeddings[j])
				if d := math.Abs(g - float64(want)); d > 2e-3 {
					t.Errorf("%q component %d: |Δ| = %.2e", c.Text, j, d)
					break
				}
				dot, na, nb = dot+g*float64(want), na+g*g, nb+float64(want)*float64(want)
			}
			if cos := dot / math.Sqrt(na*nb); cos < 0.9999 {
				t.Errorf("%q: cosine %.6f", c.Text, cos)
			}
			errs <- nil
		}(c)
	}
	for range cases {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	st := md.Statistics()
	t.Logf("%d texts in %d executions on cuda", st.GetInferenceCount(), st.GetExecutionCount())
}
