package serve

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// metricSum adds up every series of one metric.
func metricSum(t *testing.T, ts *testServer, name string) float64 {
	t.Helper()
	mfs, err := ts.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func openAIBody(n int) string {
	in := make([]string, n)
	for i := range in {
		in[i] = "文本"
	}
	b, _ := json.Marshal(map[string]any{"model": "m3e", "input": in})
	return string(b)
}

// TestOpenAIRequestLargerThanTheQueue: a request that can never fit is a
// 4xx that says the limit, counted as one failure, every time (before: 503
// with Retry-After, one failure per 8-text piece, forever). Whole-or-nothing
// admission of the pieces is TestReservationAdmitsWholeOrNothing
// (scheduler), where an engine can be held.
func TestOpenAIRequestLargerThanTheQueue(t *testing.T) {
	root := t.TempDir()
	cfg := strings.Replace(modelConfig("m3e", 8, 1000), "dynamic_batching { ", "dynamic_batching { default_queue_policy { max_queue_size: 64 } ", 1)
	writeModel(t, root, "m3e", "1", cfg)
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root}})
	for range 3 {
		before := metricSum(t, ts, "nv_inference_request_failure")
		code, h, b := ts.do(t, "POST", "/v1/embeddings", []byte(openAIBody(10_000)), nil)
		if code != http.StatusBadRequest || h.Get("Retry-After") != "" || !strings.Contains(string(b), "holds at most 64") {
			t.Fatalf("10,000 inputs: %d %v %s", code, h, b)
		}
		if d := metricSum(t, ts, "nv_inference_request_failure") - before; d != 1 {
			t.Errorf("one refused request counted as %v failures", d)
		}
	}
	// 64 inputs fit and succeed.
	if code, b := ts.post(t, "/v1/embeddings", openAIBody(64)); code != http.StatusOK {
		t.Errorf("64 inputs: %d %s", code, b)
	}
}
