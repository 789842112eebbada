package bench

import (
	"testing"
)

func TestParseStats(t *testing.T) {
	triton := `{"model_stats":[
	 {"name":"m3e","version":"1","last_inference":1,"inference_count":120,"execution_count":30,
	  "inference_stats":{"success":{"count":100,"ns":900000000},"fail":{"count":2,"ns":1},
	   "queue":{"count":100,"ns":200000000},"compute_input":{"count":30,"ns":30000000},
	   "compute_infer":{"count":30,"ns":600000000},"compute_output":{"count":30,"ns":10000000}},
	  "batch_stats":[]},
	 {"name":"other","version":"1","inference_count":999,"execution_count":1,"inference_stats":{"success":{"count":5,"ns":5}}}]}`
	protoJSON := `{"modelStats":[{"name":"m3e","version":"2","inferenceCount":"120","executionCount":"30",
	  "inferenceStats":{"success":{"count":"100","ns":"900000000"},"fail":{"count":"2"},
	   "queue":{"count":"100","ns":"200000000"},"computeInput":{"ns":"30000000"},
	   "computeInfer":{"ns":"600000000"},"computeOutput":{"ns":"10000000"}}}]}`
	want := ServerSnapshot{Success: 100, Fail: 2, InferenceCount: 120, ExecutionCount: 30,
		SuccessNs: 900000000, QueueNs: 200000000, InputNs: 30000000, InferNs: 600000000, OutputNs: 10000000}
	cases := []struct {
		name, body, model, version string
		want                       *ServerSnapshot
	}{
		{"Triton snake_case, other models ignored", triton, "m3e", "", &want},
		{"protobuf JSON camelCase with string counters", protoJSON, "m3e", "", &want},
		{"version filter", protoJSON, "m3e", "2", &want},
		{"version filter misses", protoJSON, "m3e", "1", nil},
		{"model missing", triton, "nope", "", nil},
		{"not JSON", "<html>", "m3e", "", nil},
		{"negative counter", `{"model_stats":[{"name":"m3e","inference_count":-1}]}`, "m3e", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseStats([]byte(c.body), c.model, c.version)
			if c.want == nil {
				if err == nil {
					t.Fatalf("ParseStats = %+v, want an error", got)
				}
				return
			}
			if err != nil || *got != *c.want {
				t.Fatalf("ParseStats = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestSnapshotDeltaGivesPerRequestFigures(t *testing.T) {
	before := &ServerSnapshot{Success: 10, InferenceCount: 10, ExecutionCount: 10, QueueNs: 1e6}
	after := &ServerSnapshot{Success: 110, Fail: 1, InferenceCount: 210, ExecutionCount: 60,
		SuccessNs: 500e6, QueueNs: 101e6, InputNs: 10e6, InferNs: 300e6, OutputNs: 5e6}
	got := after.Sub(before)
	want := ServerStats{Success: 100, Fail: 1, InferenceCount: 200, ExecutionCount: 50, MeanBatch: 4,
		RequestMs: 5, QueueMs: 1, ComputeInputMs: 0.1, ComputeInferMs: 3, ComputeOutputMs: 0.05}
	if *got != want {
		t.Errorf("Sub = %+v, want %+v", *got, want)
	}
	// A reset counter (model reloaded) yields no delta rather than a wrap.
	if d := before.Sub(after); d.Success != 0 || d.MeanBatch != 0 {
		t.Errorf("reset counters gave %+v", d)
	}
}

func FuzzParseStats(f *testing.F) {
	f.Add([]byte(`{"model_stats":[{"name":"m","inference_count":3,"execution_count":1,"inference_stats":{"success":{"count":3,"ns":9}}}]}`))
	f.Add([]byte(`{"modelStats":[{"name":"m","inferenceCount":"3"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStats(b, "m", "")
		if err != nil {
			return
		}
		_ = s.Sub(&ServerSnapshot{})
	})
}
