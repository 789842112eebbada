package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// fakeKServe is a tiny KServe v2 / OpenAI embeddings server for protocol
// coverage: it checks the request's form, answers 4-wide embeddings, fails
// every failEvery-th inference with 503 (or UNAVAILABLE), and keeps Triton
// statistics that count requests (executions) and rows (inferences).
type fakeKServe struct {
	tritonpb.UnimplementedGRPCInferenceServiceServer
	model     string
	failEvery int

	mu                     sync.Mutex
	n, success, fail, rows uint64
	httpURL, grpcAddr      string
	// onStats, when set, is called with the count of statistics requests
	// so far (the bench reads them at the start and end of each level).
	onStats   func(n int)
	statCalls int
}

func startFakeKServe(t *testing.T, model string, failEvery int) *fakeKServe {
	t.Helper()
	f := &fakeKServe{model: model, failEvery: failEvery}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/models/{m}/infer", f.kserveInfer)
	mux.HandleFunc("GET /v2/models/{m}/stats", f.stats)
	mux.HandleFunc("POST /v1/embeddings", f.openAI)
	mux.HandleFunc("POST /v2/repository/index", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `[{"name":%q,"version":"1","state":"READY"}]`, model)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model"}]}`, model)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	tritonpb.RegisterGRPCInferenceServiceServer(gs, f)
	go func() { _ = gs.Serve(gln) }()
	f.httpURL, f.grpcAddr = "http://"+ln.Addr().String(), gln.Addr().String()
	t.Cleanup(func() { _ = hs.Close(); gs.Stop() })
	return f
}

// admit counts one inference of rows rows and says whether it succeeds.
func (f *fakeKServe) admit(rows int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.failEvery > 0 && f.n%uint64(f.failEvery) == 0 {
		f.fail++
		return false
	}
	f.success++
	f.rows += uint64(rows)
	return true
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":%q}`, msg)
}

func (f *fakeKServe) kserveInfer(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("m") != f.model {
		writeErr(w, http.StatusNotFound, "unknown model "+r.PathValue("m"))
		return
	}
	var req struct {
		Inputs []struct {
			Name     string   `json:"name"`
			Shape    []int    `json:"shape"`
			Datatype string   `json:"datatype"`
			Data     []string `json:"data"`
		} `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Inputs) != 1 || req.Inputs[0].Name != "text" || req.Inputs[0].Datatype != "BYTES" ||
		len(req.Inputs[0].Shape) != 2 || req.Inputs[0].Shape[1] != 1 || req.Inputs[0].Shape[0] != len(req.Inputs[0].Data) {
		writeErr(w, http.StatusBadRequest, "want one BYTES input \"text\" of shape [N,1]")
		return
	}
	n := len(req.Inputs[0].Data)
	if !f.admit(n) {
		writeErr(w, http.StatusServiceUnavailable, "overloaded")
		return
	}
	fmt.Fprintf(w, `{"model_name":%q,"outputs":[{"name":"embeddings","datatype":"FP32","shape":[%d,4],"data":[%s]}]}`,
		f.model, n, vec4(n))
}

func vec4(n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += ","
		}
		s += "0.5,0.5,0.5,0.5"
	}
	return s
}

func (f *fakeKServe) openAI(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != f.model {
		writeErr(w, http.StatusBadRequest, "bad request")
		return
	}
	n := 1
	var list []string
	if json.Unmarshal(req.Input, &list) == nil {
		n = len(list)
	}
	if !f.admit(n) {
		writeErr(w, http.StatusServiceUnavailable, "overloaded")
		return
	}
	fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[%s]}]}`, vec4(1))
}

func (f *fakeKServe) snapshot() (success, fail, rows uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.success, f.fail, f.rows
}

func (f *fakeKServe) stats(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.statCalls++
	n, hook := f.statCalls, f.onStats
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	s, fl, rows := f.snapshot()
	// 1 ms queue and 2 ms compute per request.
	fmt.Fprintf(w, `{"model_stats":[{"name":%q,"version":"1","inference_count":%d,"execution_count":%d,
	"inference_stats":{"success":{"count":%d,"ns":%d},"fail":{"count":%d,"ns":0},"queue":{"count":%d,"ns":%d},
	"compute_infer":{"count":%d,"ns":%d}}}]}`, f.model, rows, s, s, s*3e6, fl, s, s*1e6, s, s*2e6)
}

func (f *fakeKServe) ModelInfer(ctx context.Context, r *tritonpb.ModelInferRequest) (*tritonpb.ModelInferResponse, error) {
	if r.GetModelName() != f.model {
		return nil, status.Error(codes.NotFound, "unknown model")
	}
	in := r.GetInputs()
	if len(in) != 1 || in[0].GetName() != "text" || in[0].GetDatatype() != "BYTES" ||
		len(in[0].GetShape()) != 2 || in[0].GetShape()[0] != int64(len(in[0].GetContents().GetBytesContents())) {
		return nil, status.Error(codes.InvalidArgument, "want one BYTES input \"text\" of shape [N,1]")
	}
	n := len(in[0].GetContents().GetBytesContents())
	if !f.admit(n) {
		return nil, status.Error(codes.Unavailable, "overloaded")
	}
	return &tritonpb.ModelInferResponse{ModelName: f.model, Outputs: []*tritonpb.ModelInferResponse_InferOutputTensor{
		{Name: "embeddings", Datatype: "FP32", Shape: []int64{int64(n), 4}, Contents: &tritonpb.InferTensorContents{Fp32Contents: make([]float32, 4*n)}}}}, nil
}

func (f *fakeKServe) ModelStatistics(ctx context.Context, r *tritonpb.ModelStatisticsRequest) (*tritonpb.ModelStatisticsResponse, error) {
	s, fl, rows := f.snapshot()
	return &tritonpb.ModelStatisticsResponse{ModelStats: []*tritonpb.ModelStatistics{{
		Name: f.model, Version: "1", InferenceCount: rows, ExecutionCount: s,
		InferenceStats: &tritonpb.InferStatistics{
			Success:      &tritonpb.StatisticDuration{Count: s, Ns: s * 3e6},
			Fail:         &tritonpb.StatisticDuration{Count: fl},
			Queue:        &tritonpb.StatisticDuration{Count: s, Ns: s * 1e6},
			ComputeInfer: &tritonpb.StatisticDuration{Count: s, Ns: s * 2e6},
		},
	}}}, nil
}

// shortRun is a fast Options baseline: two levels of 100 ms warm-up and
// 500 ms window (long enough that a loaded CI machine still completes
// requests inside it).
func shortRun(url, model, protocol string) Options {
	return Options{URL: url, Model: model, Protocol: protocol, Concurrency: "1,4", Warmup: 100 * time.Millisecond,
		Duration: 500 * time.Millisecond, TextsPerRequest: 1, Timeout: 5 * time.Second}
}
