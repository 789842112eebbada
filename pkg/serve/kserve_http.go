package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// KServe v2 HTTP handlers and Triton's HTTP extensions (model repository,
// configuration, statistics). Each returns an error; s.api writes it through
// the error table.

// serverExtensions are the Triton protocol extensions this server speaks.
var serverExtensions = []string{"binary_tensor_data", "model_repository", "model_configuration", "statistics"}

func (s *Server) handleServerMetadata(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{
		"name": serverName, "version": s.cfg.Version, "extensions": serverExtensions,
	})
}

// Health answers as Triton does: 200 when live/ready, 400 otherwise, with
// an empty body.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	switch {
	case s.ready():
		w.WriteHeader(http.StatusOK)
	case s.drain.draining.Load():
		// Shutting down: 503, the answer load balancers take out of rotation.
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
	return nil
}

func (s *Server) handleModelReady(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.model(r); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// model finds the {model}[/versions/{version}] of the request's path.
func (s *Server) model(r *http.Request) (*repository.Model, error) {
	return s.repo.Model(r.PathValue("model"), r.PathValue("version"))
}

type tensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions"`
	Platform string           `json:"platform"`
	Inputs   []tensorMetadata `json:"inputs"`
	Outputs  []tensorMetadata `json:"outputs"`
}

func (s *Server) handleModelMetadata(w http.ResponseWriter, r *http.Request) error {
	m, err := s.model(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.metadataOf(m))
}

// metadataOf describes a model's tensors as KServe does: the batch
// dimension (-1) leads when the model batches.
func (s *Server) metadataOf(m *repository.Model) *modelMetadata {
	lead := []int64{}
	if m.MaxBatchSize() > 0 {
		lead = []int64{-1}
	}
	md := &modelMetadata{
		Name:     m.Name(),
		Versions: s.readyVersions(m.Name()),
		Inputs:   []tensorMetadata{{Name: m.InputName(), Datatype: "BYTES", Shape: append(append([]int64{}, lead...), 1)}},
		Outputs:  []tensorMetadata{{Name: m.OutputName(), Datatype: "FP32", Shape: append(append([]int64{}, lead...), int64(m.Dim()))}},
	}
	if cfg := m.Config(); cfg != nil {
		md.Platform = cfg.GetPlatform()
		if md.Platform == "" {
			md.Platform = cfg.GetBackend()
		}
		for _, in := range cfg.GetInput() {
			if in.GetName() == m.InputName() && len(in.GetDims()) > 0 {
				md.Inputs[0].Shape = append(append([]int64{}, lead...), in.GetDims()...)
			}
		}
	}
	return md
}

func (s *Server) readyVersions(name string) []string {
	var vs []string
	for _, m := range s.repo.ReadyModels() {
		if m.Name() == name {
			vs = append(vs, m.Version())
		}
	}
	sort.Slice(vs, func(i, j int) bool { return versionLess(vs[i], vs[j]) })
	return vs
}

func versionLess(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

func (s *Server) handleModelConfig(w http.ResponseWriter, r *http.Request) error {
	m, err := s.model(r)
	if err != nil {
		return err
	}
	cfg := m.Config()
	if cfg == nil {
		cfg = &tritonpb.ModelConfig{Name: m.Name()}
	}
	b, err := marshalConfigJSON(cfg)
	if err != nil {
		return errorf(kindInternal, "encode config of model %q: %v", m.Name(), err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) error {
	m, err := s.model(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	binHeader := r.Header.Get(headerContentLength)
	if binHeader == "" {
		// The usual request in one pass; anything it does not take, the
		// general path below decodes (and answers its errors).
		if call, ok := fastDecodeKServe(*body, s.fastKServeLimits(m)); ok {
			putBuffer(body)
			return s.inferAndWrite(w, r, m, call)
		}
	}
	counts, err := scanJSON(jsonPartOf(*body, binHeader), schemaKServe, s.kserveLimits(m))
	if err != nil {
		putBuffer(body)
		return err
	}
	call, err := decodeHTTPInfer(*body, binHeader)
	putBuffer(body)
	if err != nil {
		return err
	}
	if err := checkDataDepth(call, counts); err != nil {
		return err
	}
	return s.inferAndWrite(w, r, m, call)
}

func (s *Server) inferAndWrite(w http.ResponseWriter, r *http.Request, m *repository.Model, call *inferCall) error {
	ans, err := s.infer(r.Context(), m, call, true)
	if err != nil {
		return err
	}
	writeKServe(w, r, ans)
	return nil
}

// fastKServeLimits are kserveLimits' bounds without their messages, which
// only the general path writes.
func (s *Server) fastKServeLimits(m *repository.Model) fastLimits {
	l := s.cfg.Limits
	lim := fastLimits{depth: l.MaxDepth, keys: l.MaxKeys, inputs: l.MaxInputs, outputs: l.MaxOutputs,
		elements: l.MaxTexts, stringBytes: s.cfg.MaxRequestBytes}
	if mb := m.MaxBatchSize(); mb > 0 {
		lim.elements = mb
	}
	return lim
}

// infer validates a decoded call against the model and runs it through the
// model's dynamic batcher. Every protocol's infer route ends here. json
// says the answer will be JSON numbers (unless the call asks for binary
// data): the engine's own text of them is then asked for (InferText).
func (s *Server) infer(ctx context.Context, m *repository.Model, call *inferCall, json bool) (*inferAnswer, error) {
	plan, err := validate(call, specOf(m))
	if err != nil {
		return nil, err
	}
	if plan.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, plan.timeout)
		defer cancel()
	}
	infer := m.Infer
	if json && !plan.binary {
		infer = m.InferText
	}
	res, err := infer(ctx, plan.texts)
	if err != nil {
		return nil, err
	}
	dim := m.Dim()
	if len(res.Embeddings) != len(plan.texts)*dim {
		if res.Release != nil {
			res.Release()
		}
		return nil, errorf(kindInternal, "model %q returned %d values for %d texts of width %d", m.Name(), len(res.Embeddings), len(plan.texts), dim)
	}
	return &inferAnswer{
		model: m.Name(), version: m.Version(), id: plan.id, output: m.OutputName(),
		rows: len(plan.texts), dim: dim, embeddings: res.Embeddings, text: res.Text, release: res.Release, binary: plan.binary, tokens: res.Tokens,
	}, nil
}

func specOf(m *repository.Model) modelSpec {
	return modelSpec{
		name: m.Name(), version: m.Version(), input: m.InputName(), output: m.OutputName(),
		maxBatchSize: m.MaxBatchSize(), dim: m.Dim(),
	}
}

type indexRequest struct {
	Ready bool `json:"ready"`
}

type indexEntry struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	State   string `json:"state,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (s *Server) handleRepositoryIndex(w http.ResponseWriter, r *http.Request) error {
	var req indexRequest
	if err := s.readOptionalJSON(w, r, &req); err != nil {
		return err
	}
	entries := s.repo.Index(req.Ready)
	out := make([]indexEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, indexEntry{Name: e.Name, Version: e.Version, State: e.State, Reason: e.Reason})
	}
	return writeJSON(w, http.StatusOK, out)
}

type loadRequest struct {
	Parameters map[string]json.RawMessage `json:"parameters"`
}

func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request) error {
	var req loadRequest
	if err := s.readOptionalJSON(w, r, &req); err != nil {
		return err
	}
	return s.load(r.Context(), r.PathValue("model"), httpLoadParams(req.Parameters))
}

func (s *Server) handleUnload(w http.ResponseWriter, r *http.Request) error {
	var req loadRequest
	if err := s.readOptionalJSON(w, r, &req); err != nil {
		return err
	}
	return s.repo.Unload(r.Context(), r.PathValue("model"))
}

// jsonPartOf is the JSON part of an infer body (all of it without the
// binary extension); a bad header length is left to decodeHTTPInfer.
func jsonPartOf(body []byte, headerLen string) []byte {
	if headerLen == "" {
		return body
	}
	if n, err := strconv.Atoi(headerLen); err == nil && n >= 0 && n <= len(body) {
		return body[:n]
	}
	return body
}
