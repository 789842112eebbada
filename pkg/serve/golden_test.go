package serve

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/serve-protocol")

// golden compares got with testdata/serve-protocol/NAME, or rewrites it
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "serve-protocol", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\ngot  %s\nwant %s", name, got, want)
	}
}

// TestWireGoldens pins the exact bytes clients parse: the KServe answer in
// JSON and in binary form, Triton's statistics JSON and the error body.
func TestWireGoldens(t *testing.T) {
	ans := &inferAnswer{model: "m3e", version: "1", id: "req-1", output: "embeddings", rows: 2, dim: 3,
		embeddings: []float32{0.014592117, -0.020276973, 0.5, 1, -0, 3.4028235e38}}
	t.Run("kserve JSON", func(t *testing.T) {
		rec := httptest.NewRecorder()
		writeKServe(rec, httptest.NewRequest(http.MethodPost, "/", nil), ans)
		golden(t, "infer_response.json", rec.Body.Bytes())
	})
	t.Run("kserve binary", func(t *testing.T) {
		bin := *ans
		bin.binary = true
		rec := httptest.NewRecorder()
		writeKServe(rec, httptest.NewRequest(http.MethodPost, "/", nil), &bin)
		if rec.Header().Get(headerContentLength) != "156" {
			t.Errorf("%s = %q", headerContentLength, rec.Header().Get(headerContentLength))
		}
		golden(t, "infer_response.bin", rec.Body.Bytes())
	})
	t.Run("statistics JSON", func(t *testing.T) {
		d := func(c, ns uint64) *tritonpb.StatisticDuration { return &tritonpb.StatisticDuration{Count: c, Ns: ns} }
		st := &tritonpb.ModelStatistics{
			Name: "m3e", Version: "1", LastInference: 1700000000000, InferenceCount: 96, ExecutionCount: 4,
			InferenceStats: &tritonpb.InferStatistics{Success: d(96, 9600000), Fail: d(1, 100), Queue: d(96, 960000),
				ComputeInput: d(4, 4000), ComputeInfer: d(4, 400000), ComputeOutput: d(4, 4000)},
			BatchStats: []*tritonpb.InferBatchStatistics{{BatchSize: 24, ComputeInput: d(4, 4000), ComputeInfer: d(4, 400000), ComputeOutput: d(4, 4000)}},
		}
		b, err := json.MarshalIndent(jsonStatsResponse{ModelStats: []jsonModelStats{statsJSON(st)}}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "stats_response.json", append(b, '\n'))
	})
	t.Run("error body", func(t *testing.T) {
		rec := httptest.NewRecorder()
		writeError(rec, invalidf("input %q has datatype %q; expected BYTES", "text", "FP32"))
		if rec.Code != 400 {
			t.Errorf("status %d", rec.Code)
		}
		golden(t, "error_response.json", rec.Body.Bytes())
	})
}
