package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"runtime/debug"
)

// routes registers every HTTP endpoint, grouped by protocol. This is the
// only place a path is named. It returns net/http's handler and the
// lane's, the same one but for the infer route taken without the mux
// (lane_route.go).
func (s *Server) routes() (netHTTP, lane http.Handler) {
	mux := http.NewServeMux()
	s.mux = mux
	h := func(pattern string, f apiFunc) { mux.Handle(pattern, s.api(f)) }
	infer := s.api(s.handleInfer) // the mux's and the lane's route

	// KServe v2: server and model metadata, health, inference.
	h("GET /v2", s.handleServerMetadata)
	h("GET /v2/health/live", s.handleLive)
	h("GET /v2/health/ready", s.handleReady)
	for _, p := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		h("GET "+p, s.handleModelMetadata)
		h("GET "+p+"/ready", s.handleModelReady)
		mux.Handle("POST "+p+"/infer", infer)
		// Triton extensions: model configuration and statistics.
		h("GET "+p+"/config", s.handleModelConfig)
		h("GET "+p+"/stats", s.handleStats)
	}
	h("GET /v2/models/stats", s.handleStats)

	// Triton model repository extension.
	h("POST /v2/repository/index", s.handleRepositoryIndex)
	h("POST /v2/repository/models/{model}/load", s.handleLoad)
	h("POST /v2/repository/models/{model}/unload", s.handleUnload)

	// OpenAI-compatible embeddings, adapters onto the same infer path.
	h("POST /v1/embeddings", s.handleOpenAIEmbeddings)
	h("GET /v1/models", s.handleOpenAIModels)
	h("GET /v1/models/{id}", s.handleOpenAIModel)

	// text-embeddings-inference's API.
	s.registerTEI(h)

	h("/", func(w http.ResponseWriter, r *http.Request) error {
		return withCode("unknown_url", errorf(kindNotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})
	inner := canonical(s, mux)
	return s.track(s.authenticate(inner)), s.track(s.authenticate(laneInferRoute(infer, inner)))
}

// canonical answers a path that is not in clean form (`..`, `.`, `//`)
// with a JSON 404 itself: http.ServeMux would answer it with a redirect to
// the cleaned path, an HTML page no API client wants, and one that walks
// `..` for the client.
func canonical(s *Server, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != "/" && (p == "" || path.Clean(p) != p) {
			s.writeErrorFor(w, r, errorf(kindNotFound, "no endpoint %s %q: the path is not in canonical form", r.Method, p))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiFunc is an HTTP handler that reports failure by returning an error.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

// api adapts an apiFunc: its error is answered through the error table, and
// a panic (a bug) becomes a 500 for this request instead of a dead server.
func (s *Server) api(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				s.writeErrorFor(w, r, errorf(kindInternal, "internal error: %v", v))
			}
		}()
		if err := f(w, r); err != nil {
			if cutByDrain(r.Context()) {
				s.drain.expired.Add(1)
				err = drainExpiredError()
			}
			kind, msg, _ := classify(err)
			if kind == kindInternal {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", msg)
			} else {
				s.log.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "err", msg)
			}
			s.writeErrorFor(w, r, err)
		}
	})
}

// readBody reads the whole request body, at most MaxRequestBytes, into a
// pooled buffer the caller returns with putBuffer.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (*[]byte, error) {
	limit := s.cfg.MaxRequestBytes
	if r.ContentLength > limit {
		return nil, errorf(kindTooLarge, "request body of %d bytes is larger than the limit of %d bytes (--max-request-bytes)", r.ContentLength, limit)
	}
	body, compressed, err := s.requestBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	if compressed {
		body = s.budgetedInflated(r, body)
	}
	// A slow body does not hold shutdown: the drain deadline ends the
	// pending read (openconns.go) and the client is answered 503.
	s.skipBackgroundRead(r)
	buf := getBuffer()
	b := (*buf)[:0]
	if !compressed && r.ContentLength > 0 && int64(cap(b)) < r.ContentLength {
		b = make([]byte, 0, r.ContentLength)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			*buf = b
			putBuffer(buf)
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, errorf(kindTooLarge, "request body is larger than the limit of %d bytes (--max-request-bytes)", limit)
			}
			if cutByDrain(r.Context()) {
				return nil, drainExpiredError()
			}
			var ae *apiError
			if errors.As(err, &ae) {
				return nil, err // the in-flight budget refused the rest of the body
			}
			return nil, invalidf("read request body: %v", err)
		}
	}
	// Closed now, at EOF: a body still open when the answer's header is
	// written makes net/http drain it first (an io.CopyN per request).
	_ = r.Body.Close()
	*buf = b
	return buf, nil
}

// readOptionalJSON decodes a small JSON body into v; an empty body leaves v
// at its zero value (the repository endpoints take optional bodies).
func (s *Server) readOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer putBuffer(body)
	if len(*body) == 0 {
		return nil
	}
	l := s.cfg.Limits
	if _, err := scanJSON(*body, schemaOther, jsonLimits{depth: l.MaxDepth, keys: l.MaxKeys}); err != nil {
		return err
	}
	return strictUnmarshal(*body, v)
}

// writeJSON writes v (a small, fixed-shape value) as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}
