package serve

import (
	"errors"
	"net/http"
)

// text-embeddings-inference's error body and status codes
// (router/src/lib.rs@v1.9.3 ErrorType and ErrorResponse;
// router/src/http/server.rs@v1.9.3 `impl From<&ErrorType> for StatusCode`):
// {"error": "...", "error_type": "Validation"} with Unhealthy 503,
// Backend 424, Overloaded 429, Validation and Tokenizer 422, Empty 400.

// teiPaths are the routes that answer errors in TEI's shape.
var teiPaths = map[string]bool{
	"/embed": true, "/embed_all": true, "/embed_sparse": true, "/predict": true, "/rerank": true,
	"/similarity": true, "/tokenize": true, "/decode": true, "/info": true, "/health": true,
	"/": true, "/invocations": true,
}

// teiTypeError gives an error TEI's error_type explicitly, where the kind
// alone does not decide it (an empty batch is Empty/400 in TEI, while other
// invalid input is Validation/422).
type teiTypeError struct {
	typ string
	err error
}

func (e *teiTypeError) Error() string { return e.err.Error() }
func (e *teiTypeError) Unwrap() error { return e.err }

func teiEmpty(format string, args ...any) error {
	return &teiTypeError{typ: "Empty", err: invalidf(format, args...)}
}

func teiBackend(format string, args ...any) error {
	return &teiTypeError{typ: "Backend", err: errorf(kindUnsupported, format, args...)}
}

// teiStatus maps an error type to TEI's status.
var teiStatus = map[string]int{
	"Unhealthy": http.StatusServiceUnavailable, "Backend": http.StatusFailedDependency,
	"Overloaded": http.StatusTooManyRequests, "Validation": http.StatusUnprocessableEntity,
	"Tokenizer": http.StatusUnprocessableEntity, "Empty": http.StatusBadRequest,
}

// teiKindType is the error table's TEI column: the error_type for each kind.
var teiKindType = map[errorKind]string{
	kindInvalidInput: "Validation",
	kindNotFound:     "Validation", // with 404: TEI serves one model and has no type for "no such"
	kindUnavailable:  "Unhealthy",
	kindOverloaded:   "Overloaded",
	kindTimeout:      "Backend",
	kindInternal:     "Backend",
	kindTooLarge:     "Validation",
	kindUnsupported:  "Backend",
}

// writeTEIError answers a TEI route's error. A body over the limit is 413,
// as TEI's body-size layer answers it; a missing API key is 401, as TEI's
// auth middleware does.
func writeTEIError(w http.ResponseWriter, err error) {
	kind, msg, retry := classify(err)
	if kind == kindUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="m3ectl"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	typ := teiKindType[kind]
	var te *teiTypeError
	if errors.As(err, &te) {
		typ = te.typ
	}
	code := teiStatus[typ]
	switch kind {
	case kindTooLarge:
		code = http.StatusRequestEntityTooLarge
	case kindNotFound:
		// No route, or a model m3ectl does not serve: 404, as TEI's router
		// answers an unknown path.
		code = http.StatusNotFound
	}
	if kind == kindOverloaded || kind == kindUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
	}
	_ = writeJSON(w, code, map[string]string{"error": msg, "error_type": typ})
}
