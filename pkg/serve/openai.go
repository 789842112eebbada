package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// OpenAI-compatible embeddings: an adapter that turns the OpenAI request
// into the same inferCall the KServe routes build, so validation, batching
// and errors are shared. Errors keep this server's {"error": "..."} shape;
// OpenAI's client libraries read a string there as the message.

type openAIEmbeddingRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

// openAIInputs reads `input`: one string or a list of strings. Token-id
// inputs (lists of integers) are refused with a message saying so.
func openAIInputs(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, invalidf("input is required: a string or a list of strings")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalidf("input: %v", err)
		}
		return []string{s}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalidf("input must be a string or a list of strings")
	}
	if len(list) == 0 {
		return nil, invalidf("input is an empty list")
	}
	texts := make([]string, len(list))
	for i, item := range list {
		if len(item) == 0 || item[0] != '"' {
			return nil, invalidf("input[%d] is not a string; token-id inputs are not supported, send text", i)
		}
		if err := json.Unmarshal(item, &texts[i]); err != nil {
			return nil, invalidf("input[%d]: %v", i, err)
		}
	}
	return texts, nil
}

func (s *Server) handleOpenAIEmbeddings(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer putBuffer(body)
	if !utf8.Valid(*body) {
		return invalidf("request JSON is not valid UTF-8")
	}
	if _, err := scanJSON(*body, schemaOpenAI, s.openAIScanLimits()); err != nil {
		return err
	}
	var req openAIEmbeddingRequest
	if err := strictUnmarshal(*body, &req); err != nil {
		return err
	}
	texts, err := openAIInputs(req.Input)
	if err != nil {
		return err
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return invalidf("encoding_format %q is not supported; use float or base64", req.EncodingFormat)
	}
	m, err := s.openAIModel(req.Model)
	if err != nil {
		return err
	}
	if err := checkFitsQueue(m, len(texts)); err != nil {
		return err
	}
	dim := m.Dim()
	outDim := dim
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > dim {
			return invalidf("dimensions must be between 1 and the model's %d, got %d", dim, *req.Dimensions)
		}
		outDim = *req.Dimensions
	}
	emb, tokens, err := s.embedChunks(r, m, texts)
	if err != nil {
		return err
	}
	buf := getBuffer()
	b := append((*buf)[:0], `{"object":"list","data":[`...)
	var row []float32
	var raw []byte
	for i := range texts {
		row = append(row[:0], emb[i*dim:i*dim+outDim]...)
		if outDim < dim {
			normalize(row)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		if req.EncodingFormat == "base64" {
			raw = appendFloat32LE(raw[:0], row)
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = appendFloat32s(b, row)
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = appendJSONString(b, m.Name())
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, "}}\n"...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	*buf = b
	putBuffer(buf)
	return nil
}

// embedChunks runs texts through the model in pieces of at most
// max_batch_size rows (OpenAI clients send hundreds of inputs at once), all
// pieces in flight together so the batcher can pack them.
func (s *Server) embedChunks(r *http.Request, m *repository.Model, texts []string) ([]float32, int, error) {
	dim := m.Dim()
	chunk := m.MaxBatchSize()
	if chunk <= 0 {
		chunk = 1
	}
	out := make([]float32, len(texts)*dim)
	tokens := make([]int, (len(texts)+chunk-1)/chunk)
	g, ctx := errgroup.WithContext(r.Context())
	for c, lo := 0, 0; lo < len(texts); c, lo = c+1, lo+chunk {
		hi := min(lo+chunk, len(texts))
		g.Go(func() error {
			call := &inferCall{inputs: []callInput{{
				name: m.InputName(), datatype: "BYTES", shape: []int64{int64(hi - lo), 1}, texts: texts[lo:hi],
			}}}
			ans, err := s.infer(ctx, m, call)
			if err != nil {
				return err
			}
			copy(out[lo*dim:hi*dim], ans.embeddings)
			tokens[c] = ans.tokens
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	total := 0
	for _, t := range tokens {
		total += t
	}
	return out, total, nil
}

// openAIModel resolves the request's `model`; when it is empty and exactly
// one model is served, that one.
func (s *Server) openAIModel(name string) (*repository.Model, error) {
	if name != "" {
		return s.repo.Model(name, "")
	}
	names := s.readyModelNames()
	if len(names) == 1 {
		return s.repo.Model(names[0], "")
	}
	return nil, invalidf("model is required; served models: %v", names)
}

func (s *Server) readyModelNames() []string {
	seen := map[string]bool{}
	var names []string
	for _, m := range s.repo.ReadyModels() {
		if !seen[m.Name()] {
			seen[m.Name()] = true
			names = append(names, m.Name())
		}
	}
	sort.Strings(names)
	return names
}

type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) handleOpenAIModels(w http.ResponseWriter, r *http.Request) error {
	data := []openAIModel{}
	for _, n := range s.readyModelNames() {
		data = append(data, openAIModel{ID: n, Object: "model", OwnedBy: serverName})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// normalize scales v to unit L2 length (a zero vector stays zero): OpenAI's
// `dimensions` keeps the leading components and re-normalises them.
func normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
}
