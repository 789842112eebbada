package serve

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// OpenAI-compatible embeddings: an adapter that turns the OpenAI request
// into the same inferCall the KServe routes build, so validation, batching
// and the error table are shared. Errors are written in OpenAI's own shape
// (openai_errors.go).

type openAIEmbeddingRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

func (s *Server) handleOpenAIEmbeddings(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer putBuffer(body)
	req, in, err := s.decodeOpenAI(*body)
	if err != nil {
		return err
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return withParam("encoding_format", invalidf("encoding_format %q is not supported; use float or base64", req.EncodingFormat))
	}
	m, err := s.openAIModel(req.Model)
	if err != nil {
		return withParam("model", err)
	}
	dim := m.Dim()
	outDim := dim
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > dim {
			return withParam("dimensions", invalidf("dimensions must be between 1 and the model's %d, got %d", dim, *req.Dimensions))
		}
		outDim = *req.Dimensions
	}
	// The engine's JSON text of the rows serves a float answer at the
	// model's full width; a shorter one is re-normalised here.
	wantText := req.EncodingFormat != "base64" && outDim == dim
	emb, text, release, tokens, err := s.embedChunks(r, m, in, wantText)
	if err != nil {
		return err
	}
	defer release()
	n := in.len()
	buf := getBuffer()
	b := append((*buf)[:0], `{"object":"list","data":[`...)
	var row []float32
	var raw []byte
	for i := range n {
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
			var rowText []byte
			if text != nil {
				rowText = text[i]
			}
			b = append(b, '[')
			b = appendRowText(b, row, rowText)
			b = append(b, ']')
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
	release()
	writeJSONBody(w, r, b)
	*buf = b
	putBuffer(buf)
	return nil
}

// embedChunks runs the inputs through the model in pieces of at most
// max_batch_size rows (OpenAI clients send hundreds of inputs at once), all
// pieces in flight together so the batcher can pack them. Texts go through
// the same validation as a KServe request; token ids straight to the
// batcher. The token count is the exact number of ids the engine ran
// ([CLS] and [SEP] included, after truncation), OpenAI's prompt_tokens.
// With wantText the rows' JSON text comes back where the engine wrote it
// (see Server.infer); text is nil, or has nil rows, elsewhere. release
// (idempotent) gives the text's memory back; text is not read after.
func (s *Server) embedChunks(r *http.Request, m *repository.Model, in openAIInput, wantText bool) (emb []float32, text [][]byte, release func(), tokens int, err error) {
	dim := m.Dim()
	chunk := m.MaxBatchSize()
	if chunk <= 0 {
		chunk = 1
	}
	n := in.len()
	// The pieces are admitted as a whole or not at all (one 503, counted
	// once), never some of them.
	res, err := m.Reserve(n)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	defer res.Release()
	var mu sync.Mutex
	var answers []*inferAnswer
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range answers {
			a.done()
		}
		answers = nil
	}
	out := make([]float32, n*dim)
	if wantText && in.ids == nil {
		text = make([][]byte, n)
	}
	counts := make([]int, (n+chunk-1)/chunk)
	g, ctx := errgroup.WithContext(repository.WithReservation(r.Context(), res))
	for c, lo := 0, 0; lo < n; c, lo = c+1, lo+chunk {
		hi := min(lo+chunk, n)
		g.Go(func() error {
			var emb []float32
			if in.ids != nil {
				res, err := m.InferIDs(ctx, in.ids[lo:hi])
				if err != nil {
					return err
				}
				emb, counts[c] = res.Embeddings, res.Tokens
			} else {
				call := &inferCall{inputs: []callInput{{
					name: m.InputName(), datatype: "BYTES", shape: []int64{int64(hi - lo), 1}, texts: in.texts[lo:hi],
				}}}
				ans, err := s.infer(ctx, m, call, text != nil)
				if err != nil {
					return err
				}
				emb, counts[c] = ans.embeddings, ans.tokens
				if ans.release != nil {
					mu.Lock()
					answers = append(answers, ans)
					mu.Unlock()
				}
				if text != nil && ans.text != nil {
					copy(text[lo:hi], ans.text)
				}
			}
			if len(emb) != (hi-lo)*dim {
				return errorf(kindInternal, "model %q returned %d values for %d inputs of width %d", m.Name(), len(emb), hi-lo, dim)
			}
			copy(out[lo*dim:hi*dim], emb)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		release()
		return nil, nil, nil, 0, err
	}
	for _, t := range counts {
		tokens += t
	}
	return out, text, release, tokens, nil
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
