package serve

import (
	"net/http"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// Triton's HTTP statistics extension answers with the ModelStatistics
// message in JSON, but with counters as JSON numbers (protojson would quote
// 64-bit integers), so the shape is written out here.

type jsonDuration struct {
	Count uint64 `json:"count"`
	Ns    uint64 `json:"ns"`
}

type jsonInferStats struct {
	Success       jsonDuration `json:"success"`
	Fail          jsonDuration `json:"fail"`
	Queue         jsonDuration `json:"queue"`
	ComputeInput  jsonDuration `json:"compute_input"`
	ComputeInfer  jsonDuration `json:"compute_infer"`
	ComputeOutput jsonDuration `json:"compute_output"`
	CacheHit      jsonDuration `json:"cache_hit"`
	CacheMiss     jsonDuration `json:"cache_miss"`
}

type jsonBatchStats struct {
	BatchSize     uint64       `json:"batch_size"`
	ComputeInput  jsonDuration `json:"compute_input"`
	ComputeInfer  jsonDuration `json:"compute_infer"`
	ComputeOutput jsonDuration `json:"compute_output"`
}

type jsonModelStats struct {
	Name           string           `json:"name"`
	Version        string           `json:"version"`
	LastInference  uint64           `json:"last_inference"`
	InferenceCount uint64           `json:"inference_count"`
	ExecutionCount uint64           `json:"execution_count"`
	InferenceStats jsonInferStats   `json:"inference_stats"`
	BatchStats     []jsonBatchStats `json:"batch_stats"`
	MemoryUsage    []any            `json:"memory_usage"`
}

type jsonStatsResponse struct {
	ModelStats []jsonModelStats `json:"model_stats"`
}

func durationJSON(d *tritonpb.StatisticDuration) jsonDuration {
	return jsonDuration{Count: d.GetCount(), Ns: d.GetNs()}
}

func statsJSON(st *tritonpb.ModelStatistics) jsonModelStats {
	is := st.GetInferenceStats()
	out := jsonModelStats{
		Name: st.GetName(), Version: st.GetVersion(), LastInference: st.GetLastInference(),
		InferenceCount: st.GetInferenceCount(), ExecutionCount: st.GetExecutionCount(),
		InferenceStats: jsonInferStats{
			Success: durationJSON(is.GetSuccess()), Fail: durationJSON(is.GetFail()),
			Queue: durationJSON(is.GetQueue()), ComputeInput: durationJSON(is.GetComputeInput()),
			ComputeInfer: durationJSON(is.GetComputeInfer()), ComputeOutput: durationJSON(is.GetComputeOutput()),
			CacheHit: durationJSON(is.GetCacheHit()), CacheMiss: durationJSON(is.GetCacheMiss()),
		},
		BatchStats:  []jsonBatchStats{},
		MemoryUsage: []any{},
	}
	for _, b := range st.GetBatchStats() {
		out.BatchStats = append(out.BatchStats, jsonBatchStats{
			BatchSize: b.GetBatchSize(), ComputeInput: durationJSON(b.GetComputeInput()),
			ComputeInfer: durationJSON(b.GetComputeInfer()), ComputeOutput: durationJSON(b.GetComputeOutput()),
		})
	}
	return out
}

// statistics collects the statistics of the named model (every ready
// version, or the one asked for), or of every ready model when name is "".
func (s *Server) statistics(name, version string) ([]*tritonpb.ModelStatistics, error) {
	if name != "" && version != "" {
		m, err := s.repo.Model(name, version)
		if err != nil {
			return nil, err
		}
		return []*tritonpb.ModelStatistics{m.Statistics()}, nil
	}
	var out []*tritonpb.ModelStatistics
	for _, m := range s.repo.ReadyModels() {
		if name == "" || m.Name() == name {
			out = append(out, m.Statistics())
		}
	}
	if name != "" && len(out) == 0 {
		// Let the repository say why: unknown, or known but not ready.
		if _, err := s.repo.Model(name, ""); err != nil {
			return nil, err
		}
		return nil, &repository.Error{Kind: repository.Unavailable, Msg: "model " + name + " has no ready version"}
	}
	return out, nil
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) error {
	sts, err := s.statistics(r.PathValue("model"), r.PathValue("version"))
	if err != nil {
		return err
	}
	resp := jsonStatsResponse{ModelStats: make([]jsonModelStats, 0, len(sts))}
	for _, st := range sts {
		resp.ModelStats = append(resp.ModelStats, statsJSON(st))
	}
	return writeJSON(w, http.StatusOK, resp)
}
