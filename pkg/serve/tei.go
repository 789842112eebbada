package serve

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/serve/scheduler"
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// text-embeddings-inference's HTTP API on the HTTP port, from TEI's own
// OpenAPI file (docs/openapi.json@v1.9.3, kept in testdata/tei/) and router
// (router/src/http/server.rs@v1.9.3). The embedding routes are adapters onto
// the same batcher as KServe and OpenAI: TEI's truncation options need the
// tokenisation in hand, so texts are tokenised here and run as token ids.

type teiEmbedRequest struct {
	Inputs              json.RawMessage `json:"inputs"`
	Normalize           *bool           `json:"normalize"`
	Truncate            *bool           `json:"truncate"`
	TruncationDirection string          `json:"truncation_direction"`
	Dimensions          *int            `json:"dimensions"`
	PromptName          *string         `json:"prompt_name"`
	Model               string          `json:"model"` // m3ectl's extension: which model
}

func (s *Server) registerTEI(h func(string, apiFunc)) {
	h("POST /embed", s.handleTEIEmbed)
	// TEI also embeds on POST / and /invocations and answers health on
	// GET / (router/src/http/server.rs@v1.9.3): huggingface_hub's
	// InferenceClient(model="http://host:port").feature_extraction posts
	// its {"inputs": ...} to the URL itself.
	h("POST /{$}", s.handleTEIEmbed)
	h("POST /invocations", s.handleTEIEmbed)
	h("GET /{$}", s.handleTEIHealth)
	h("POST /embed_all", s.handleTEIEmbedAll)
	h("POST /similarity", s.handleTEISimilarity)
	h("POST /tokenize", s.handleTEITokenize)
	h("POST /decode", s.handleTEIDecode)
	h("GET /info", s.handleTEIInfo)
	h("GET /health", s.handleTEIHealth)
	// Routes for model kinds m3ectl does not serve, answered as TEI answers
	// them on an embedding model: 424 with the reason.
	h("POST /rerank", func(http.ResponseWriter, *http.Request) error {
		return teiBackend("model is not a re-ranker model")
	})
	h("POST /predict", func(http.ResponseWriter, *http.Request) error {
		return teiBackend("model is not a classifier model")
	})
	h("POST /embed_sparse", func(http.ResponseWriter, *http.Request) error {
		return teiBackend("Model is not an embedding model with SPLADE pooling")
	})
}

// teiDecode reads a TEI request body; TEI (serde) ignores unknown fields.
func (s *Server) teiDecode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer putBuffer(body)
	return strictUnmarshal(*body, v)
}

// teiEmbed embeds a TEI request's inputs; rows are unit length when
// normalize, cut to dimensions first (TEI's Matryoshka truncation).
func (s *Server) teiEmbed(w http.ResponseWriter, r *http.Request, req *teiEmbedRequest) ([][]float32, error) {
	if req.PromptName != nil {
		return nil, invalidf("prompt_name %q is not supported: m3ectl's models define no prompts", *req.PromptName)
	}
	rows, err := parseTEIInputs(req.Inputs)
	if err != nil {
		return nil, err
	}
	m, err := s.teiModel(req.Model)
	if err != nil {
		return nil, err
	}
	if mb := m.MaxBatchSize(); mb > 0 && len(rows) > mb {
		return nil, invalidf("batch size %d > maximum allowed batch size %d", len(rows), mb)
	}
	ids, chars, err := teiEncoding(m, rows, req.Truncate, req.TruncationDirection)
	if err != nil {
		return nil, err
	}
	unit := req.Normalize == nil || *req.Normalize
	if !unit && m.Pooling().Normalize {
		return nil, teiBackend("model %s L2-normalises inside its engine; normalize=false is not available", m.Name())
	}
	dim := m.Dim()
	outDim := dim
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > dim {
			return nil, invalidf("`dimensions` must be between 1 and %d, got %d", dim, *req.Dimensions)
		}
		outDim = *req.Dimensions
	}
	start := time.Now()
	res, err := m.InferIDs(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	h := w.Header()
	h.Set("x-compute-type", "cpu+optimized")
	h.Set("x-compute-characters", strconv.Itoa(chars))
	h.Set("x-compute-tokens", strconv.Itoa(res.Tokens))
	h.Set("x-total-time", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	out := make([][]float32, len(ids))
	for i := range out {
		row := append([]float32(nil), res.Embeddings[i*dim:i*dim+outDim]...)
		if unit && (outDim < dim || !m.Pooling().Normalize) {
			normalize(row)
		}
		out[i] = row
	}
	return out, nil
}

func (s *Server) handleTEIEmbed(w http.ResponseWriter, r *http.Request) error {
	var req teiEmbedRequest
	if err := s.teiDecode(w, r, &req); err != nil {
		return err
	}
	rows, err := s.teiEmbed(w, r, &req)
	if err != nil {
		return err
	}
	buf := getBuffer()
	b := append((*buf)[:0], '[')
	for i, row := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFloat32s(b, row)
	}
	b = append(b, "]\n"...)
	writeJSONBody(w, r, b)
	*buf = b
	putBuffer(buf)
	return nil
}

// handleTEIEmbedAll answers TEI's per-token embeddings: for each input,
// the encoder's hidden state of every token ([CLS] and [SEP] included),
// unpooled and unnormalised, as TEI's embed_all returns them. They come
// from a model engine of their own (repository.Model.EmbedTokens); models
// whose engine cannot give them answer 424.
func (s *Server) handleTEIEmbedAll(w http.ResponseWriter, r *http.Request) error {
	var req teiEmbedRequest
	if err := s.teiDecode(w, r, &req); err != nil {
		return err
	}
	if req.PromptName != nil {
		return invalidf("prompt_name %q is not supported: m3ectl's models define no prompts", *req.PromptName)
	}
	rows, err := parseTEIInputs(req.Inputs)
	if err != nil {
		return err
	}
	m, err := s.teiModel(req.Model)
	if err != nil {
		return err
	}
	if mb := m.MaxBatchSize(); mb > 0 && len(rows) > mb {
		return invalidf("batch size %d > maximum allowed batch size %d", len(rows), mb)
	}
	ids, _, err := teiEncoding(m, rows, req.Truncate, req.TruncationDirection)
	if err != nil {
		return err
	}
	states, err := m.EmbedTokens(r.Context(), ids)
	if err != nil {
		return err
	}
	buf := getBuffer()
	b := append((*buf)[:0], '[')
	for i, row := range states {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, tok := range row {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendFloat32s(b, tok)
		}
		b = append(b, ']')
	}
	b = append(b, "]\n"...)
	writeJSONBody(w, r, b)
	*buf = b
	putBuffer(buf)
	return nil
}

type teiSimilarityRequest struct {
	Inputs struct {
		SourceSentence *string  `json:"source_sentence"`
		Sentences      []string `json:"sentences"`
	} `json:"inputs"`
	Parameters *struct {
		Truncate            *bool   `json:"truncate"`
		TruncationDirection string  `json:"truncation_direction"`
		PromptName          *string `json:"prompt_name"`
	} `json:"parameters"`
	Model string `json:"model"`
}

// handleTEISimilarity answers the cosine similarity of source_sentence with
// each of sentences, as TEI computes it from un-normalised embeddings.
func (s *Server) handleTEISimilarity(w http.ResponseWriter, r *http.Request) error {
	var req teiSimilarityRequest
	if err := s.teiDecode(w, r, &req); err != nil {
		return err
	}
	if req.Inputs.SourceSentence == nil {
		return invalidf("missing field `inputs.source_sentence`")
	}
	if len(req.Inputs.Sentences) == 0 {
		return teiEmpty("`inputs.sentences` cannot be empty")
	}
	texts := append([]string{*req.Inputs.SourceSentence}, req.Inputs.Sentences...)
	raw, _ := json.Marshal(texts)
	er := teiEmbedRequest{Inputs: raw, Model: req.Model}
	if p := req.Parameters; p != nil {
		er.Truncate, er.TruncationDirection, er.PromptName = p.Truncate, p.TruncationDirection, p.PromptName
	}
	rows, err := s.teiEmbed(w, r, &er)
	if err != nil {
		return err
	}
	sims := make([]float64, len(rows)-1)
	for i := range sims {
		sims[i] = cosine(rows[0], rows[i+1])
	}
	return writeJSON(w, http.StatusOK, sims)
}

type teiTokenizeRequest struct {
	Inputs           json.RawMessage `json:"inputs"`
	AddSpecialTokens *bool           `json:"add_special_tokens"`
	PromptName       *string         `json:"prompt_name"`
	Model            string          `json:"model"`
}

type teiToken struct {
	ID      int32  `json:"id"`
	Text    string `json:"text"`
	Special bool   `json:"special"`
	Start   *int   `json:"start"`
	Stop    *int   `json:"stop"`
}

// handleTEITokenize answers each input's tokens with their text and byte
// offsets, untruncated, as TEI's /tokenize does.
func (s *Server) handleTEITokenize(w http.ResponseWriter, r *http.Request) error {
	var req teiTokenizeRequest
	if err := s.teiDecode(w, r, &req); err != nil {
		return err
	}
	if req.PromptName != nil {
		return invalidf("prompt_name %q is not supported: m3ectl's models define no prompts", *req.PromptName)
	}
	var texts []string
	if err := json.Unmarshal(req.Inputs, &texts); err != nil {
		var one string
		if err := json.Unmarshal(req.Inputs, &one); err != nil || len(req.Inputs) == 0 {
			return invalidf("`inputs` must be a string or a list of strings")
		}
		texts = []string{one}
	} else if len(texts) == 0 {
		return teiEmpty("`inputs` cannot be empty")
	}
	m, err := s.teiModel(req.Model)
	if err != nil {
		return err
	}
	if mb := m.MaxBatchSize(); mb > 0 && len(texts) > mb {
		return invalidf("batch size %d > maximum allowed batch size %d", len(texts), mb)
	}
	tok := m.Tokenizer().WithMaxLength(math.MaxInt32)
	special := req.AddSpecialTokens == nil || *req.AddSpecialTokens
	out := make([][]teiToken, len(texts))
	for i, t := range texts {
		for _, tk := range tok.TokenSpans(t, special) {
			out[i] = append(out[i], teiTokenOf(tk))
		}
		if out[i] == nil {
			out[i] = []teiToken{}
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func teiTokenOf(tk tokenizer.Token) teiToken {
	t := teiToken{ID: tk.ID, Text: tk.Text, Special: tk.Special}
	if tk.Start >= 0 {
		start, stop := tk.Start, tk.Stop
		t.Start, t.Stop = &start, &stop
	}
	return t
}

type teiDecodeRequest struct {
	IDs               json.RawMessage `json:"ids"`
	SkipSpecialTokens *bool           `json:"skip_special_tokens"`
	Model             string          `json:"model"`
}

func (s *Server) handleTEIDecode(w http.ResponseWriter, r *http.Request) error {
	var req teiDecodeRequest
	if err := s.teiDecode(w, r, &req); err != nil {
		return err
	}
	rows, err := parseTEIInputs(req.IDs)
	if err != nil {
		return err
	}
	m, err := s.teiModel(req.Model)
	if err != nil {
		return err
	}
	tok := m.Tokenizer()
	skip := req.SkipSpecialTokens == nil || *req.SkipSpecialTokens
	out := make([]string, len(rows))
	for i, row := range rows {
		if !row.isIDs {
			return invalidf("`ids[%d]` must be a list of token ids", i)
		}
		if len(row.ids) == 0 {
			return teiEmpty("`ids` cannot be empty")
		}
		for _, id := range row.ids {
			if int(id) >= tok.VocabSize() {
				return &teiTypeError{typ: "Tokenizer", err: invalidf("token id %d is outside the vocabulary of %d", id, tok.VocabSize())}
			}
		}
		out[i] = tok.Decode(row.ids, skip)
	}
	return writeJSON(w, http.StatusOK, out)
}

// handleTEIInfo answers TEI's Info object for the served model.
func (s *Server) handleTEIInfo(w http.ResponseWriter, r *http.Request) error {
	m, err := s.teiModel(r.URL.Query().Get("model"))
	if err != nil {
		return err
	}
	mb := m.MaxBatchSize()
	if mb <= 0 {
		mb = 1
	}
	maxLen := m.Tokenizer().MaxLength()
	return writeJSON(w, http.StatusOK, map[string]any{
		"model_id":                m.Name(),
		"model_sha":               nil,
		"model_dtype":             "float32",
		"model_type":              map[string]any{"embedding": map[string]string{"pooling": m.Pooling().Mode.String()}},
		"served_model_name":       m.Name(),
		"max_concurrent_requests": queueRows(m),
		"max_input_length":        maxLen,
		"max_batch_tokens":        mb * maxLen,
		"max_batch_requests":      nil,
		"max_client_batch_size":   mb,
		"auto_truncate":           m.Truncates(),
		"tokenization_workers":    1,
		"version":                 s.cfg.Version,
		"sha":                     nil,
		"docker_label":            nil,
	})
}

// handleTEIHealth is 200 with an empty body when a model is ready, else
// TEI's 503 Unhealthy.
func (s *Server) handleTEIHealth(w http.ResponseWriter, r *http.Request) error {
	if !s.ready() {
		return errorf(kindUnavailable, "unhealthy")
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// queueRows is the model's queue bound in texts, TEI's
// max_concurrent_requests.
func queueRows(m *repository.Model) int {
	if n := m.Config().GetDynamicBatching().GetDefaultQueuePolicy().GetMaxQueueSize(); n > 0 {
		return int(n)
	}
	return scheduler.DefaultMaxQueueRows
}
