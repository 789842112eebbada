package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// StatsSource reads the server's cumulative statistics for the model under
// test (Triton's statistics extension).
type StatsSource interface {
	Snapshot(ctx context.Context) (*ServerSnapshot, error)
}

// ServerSnapshot is the server's cumulative counters at one moment, in
// Triton's terms: requests (success/fail), inferences (rows) and executions
// (batches), and the nanoseconds spent per phase over all successful requests.
type ServerSnapshot struct {
	Success, Fail                                  uint64
	InferenceCount, ExecutionCount                 uint64
	SuccessNs, QueueNs, InputNs, InferNs, OutputNs uint64
}

// ServerStats is the server-side view of one level: counter deltas and the
// per-request means derived from them.
type ServerStats struct {
	Success        uint64 `json:"success"`
	Fail           uint64 `json:"fail"`
	InferenceCount uint64 `json:"inference_count"`
	ExecutionCount uint64 `json:"execution_count"`
	// MeanBatch is inferences per execution: the rows the dynamic batcher
	// put into each engine run.
	MeanBatch float64 `json:"mean_batch"`
	// Per successful request, milliseconds.
	RequestMs       float64 `json:"request_ms"`
	QueueMs         float64 `json:"queue_ms"`
	ComputeInputMs  float64 `json:"compute_input_ms"`
	ComputeInferMs  float64 `json:"compute_infer_ms"`
	ComputeOutputMs float64 `json:"compute_output_ms"`
}

// Sub returns the statistics between before and s.
func (s *ServerSnapshot) Sub(before *ServerSnapshot) *ServerStats {
	d := func(a, b uint64) uint64 {
		if a < b { // counters reset (model reloaded): no meaningful delta
			return 0
		}
		return a - b
	}
	st := &ServerStats{
		Success:        d(s.Success, before.Success),
		Fail:           d(s.Fail, before.Fail),
		InferenceCount: d(s.InferenceCount, before.InferenceCount),
		ExecutionCount: d(s.ExecutionCount, before.ExecutionCount),
	}
	if st.ExecutionCount > 0 {
		st.MeanBatch = float64(st.InferenceCount) / float64(st.ExecutionCount)
	}
	if st.Success > 0 {
		per := func(a, b uint64) float64 { return float64(d(a, b)) / float64(st.Success) / 1e6 }
		st.RequestMs = per(s.SuccessNs, before.SuccessNs)
		st.QueueMs = per(s.QueueNs, before.QueueNs)
		st.ComputeInputMs = per(s.InputNs, before.InputNs)
		st.ComputeInferMs = per(s.InferNs, before.InferNs)
		st.ComputeOutputMs = per(s.OutputNs, before.OutputNs)
	}
	return st
}

// HTTPStats reads GET {url}/v2/models/{model}[/versions/{v}]/stats.
type HTTPStats struct {
	Client  *http.Client
	URL     string // the server's base URL
	Model   string
	Version string
}

// Snapshot fetches and parses the model's statistics.
func (h *HTTPStats) Snapshot(ctx context.Context) (*ServerSnapshot, error) {
	u := strings.TrimRight(h.URL, "/") + "/v2/models/" + h.Model
	if h.Version != "" {
		u += "/versions/" + h.Version
	}
	u += "/stats"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: HTTP %d", u, resp.StatusCode)
	}
	return ParseStats(body, h.Model, h.Version)
}

// flexUint reads a JSON number or a decimal string (protobuf's JSON mapping
// writes 64-bit integers as strings).
type flexUint uint64

func (f *flexUint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		fv, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || fv < 0 {
			return fmt.Errorf("not a counter: %q", s)
		}
		v = uint64(fv)
	}
	*f = flexUint(v)
	return nil
}

type statDuration struct {
	Count flexUint `json:"count"`
	Ns    flexUint `json:"ns"`
}

// modelStats accepts both Triton's snake_case and protobuf's camelCase names.
type modelStats struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InferenceCount flexUint    `json:"inference_count"`
	ExecutionCount flexUint    `json:"execution_count"`
	InferenceCamel flexUint    `json:"inferenceCount"`
	ExecutionCamel flexUint    `json:"executionCount"`
	Stats          *inferStats `json:"inference_stats"`
	StatsCamel     *inferStats `json:"inferenceStats"`
}

type inferStats struct {
	Success            statDuration `json:"success"`
	Fail               statDuration `json:"fail"`
	Queue              statDuration `json:"queue"`
	ComputeInput       statDuration `json:"compute_input"`
	ComputeInfer       statDuration `json:"compute_infer"`
	ComputeOutput      statDuration `json:"compute_output"`
	ComputeInputCamel  statDuration `json:"computeInput"`
	ComputeInferCamel  statDuration `json:"computeInfer"`
	ComputeOutputCamel statDuration `json:"computeOutput"`
}

// ParseStats reads a Triton statistics response ({"model_stats":[...]}) and
// sums the entries of model (and version, when given; all versions
// otherwise).
func ParseStats(body []byte, model, version string) (*ServerSnapshot, error) {
	var doc struct {
		ModelStats      []modelStats `json:"model_stats"`
		ModelStatsCamel []modelStats `json:"modelStats"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("parse statistics: %w", err)
	}
	entries := append(doc.ModelStats, doc.ModelStatsCamel...)
	snap := &ServerSnapshot{}
	found := false
	for _, m := range entries {
		if (model != "" && m.Name != model) || (version != "" && m.Version != version) {
			continue
		}
		found = true
		snap.InferenceCount += uint64(m.InferenceCount + m.InferenceCamel)
		snap.ExecutionCount += uint64(m.ExecutionCount + m.ExecutionCamel)
		for _, st := range []*inferStats{m.Stats, m.StatsCamel} {
			if st == nil {
				continue
			}
			snap.Success += uint64(st.Success.Count)
			snap.Fail += uint64(st.Fail.Count)
			snap.SuccessNs += uint64(st.Success.Ns)
			snap.QueueNs += uint64(st.Queue.Ns)
			snap.InputNs += uint64(st.ComputeInput.Ns + st.ComputeInputCamel.Ns)
			snap.InferNs += uint64(st.ComputeInfer.Ns + st.ComputeInferCamel.Ns)
			snap.OutputNs += uint64(st.ComputeOutput.Ns + st.ComputeOutputCamel.Ns)
		}
	}
	if !found {
		return nil, fmt.Errorf("statistics have no entry for model %q", model)
	}
	return snap, nil
}
