package serve

import (
	"errors"
	"net/http"
	"strings"
)

// OpenAI's error body. The official SDKs (openai-node's APIError.generate,
// openai-python's _make_status_error) read `error.message`, `error.type`,
// `error.param` and `error.code` from it and pick the exception class from
// the HTTP status alone, so both the status and the four fields matter.

// openAIError is the object under "error".
type openAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// fieldError marks an error with the request field it is about (OpenAI's
// `param`) and, optionally, OpenAI's machine-readable `code`. It wraps the
// apiError that carries the kind, so classify still finds it.
type fieldError struct {
	param, code string
	err         error
}

func (e *fieldError) Error() string { return e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// withParam attaches the request field an error is about.
func withParam(param string, err error) error {
	if err == nil {
		return nil
	}
	return &fieldError{param: param, err: err}
}

// withCode attaches OpenAI's error code.
func withCode(code string, err error) error {
	if err == nil {
		return nil
	}
	return &fieldError{code: code, err: err}
}

// openAIStatus is the error table's OpenAI column: the status OpenAI answers
// for each kind, and the `type` and default `code` it puts in the body. It
// differs from the KServe column in one row: a full queue is 429
// rate_limit_exceeded, which the SDKs retry after Retry-After, where Triton
// answers 503.
var openAIStatus = map[errorKind]struct {
	http      int
	typ, code string
}{
	kindInvalidInput:    {http.StatusBadRequest, "invalid_request_error", ""},
	kindNotFound:        {http.StatusNotFound, "invalid_request_error", "model_not_found"},
	kindUnavailable:     {http.StatusServiceUnavailable, "server_error", "service_unavailable"},
	kindOverloaded:      {http.StatusTooManyRequests, "requests", "rate_limit_exceeded"},
	kindTimeout:         {http.StatusGatewayTimeout, "server_error", "timeout"},
	kindInternal:        {http.StatusInternalServerError, "server_error", ""},
	kindTooLarge:        {http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large"},
	kindUnauthenticated: {http.StatusUnauthorized, "invalid_request_error", "invalid_api_key"},
	kindUnsupported:     {http.StatusBadRequest, "invalid_request_error", "unsupported"},
}

// writeOpenAIError answers a /v1 request in OpenAI's shape.
func writeOpenAIError(w http.ResponseWriter, err error) {
	kind, msg, retry := classify(err)
	st := openAIStatus[kind]
	body := openAIError{Message: msg, Type: st.typ}
	code, codeSet := st.code, false
	var fe *fieldError
	for e := err; errors.As(e, &fe); e = fe.err {
		if fe.param != "" && body.Param == nil {
			p := fe.param
			body.Param = &p
		}
		if fe.code != "" && !codeSet {
			code, codeSet = fe.code, true
		}
	}
	if code != "" {
		body.Code = &code
	}
	h := w.Header()
	if kind == kindOverloaded || kind == kindUnavailable {
		h.Set("Retry-After", retryAfterSeconds(retry))
	}
	if kind == kindUnauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="m3ectl"`)
	}
	_ = writeJSON(w, st.http, map[string]openAIError{"error": body})
}

// writeErrorFor answers an error in the shape of the protocol the request's
// path belongs to: OpenAI's under /v1/, TEI's on TEI's routes, and the
// KServe/Triton {"error": "..."} everywhere else.
func (s *Server) writeErrorFor(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		writeOpenAIError(w, err)
	case teiPaths[r.URL.Path]:
		writeTEIError(w, err)
	default:
		writeError(w, err)
	}
}
