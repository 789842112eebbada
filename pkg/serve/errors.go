package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// errorKind is what a failed request was, as the protocol layer answers it.
// It extends repository's kinds with the few that only the wire side knows
// (an oversized body, a missing API key).
type errorKind int

const (
	kindInvalidInput errorKind = iota
	kindNotFound
	kindUnavailable
	kindOverloaded
	kindTimeout
	kindInternal
	kindTooLarge
	kindUnauthenticated
	kindUnsupported
)

// errorStatus is one row of the error table.
type errorStatus struct {
	http int
	grpc codes.Code
}

// errorTable is the ONE place where an error kind becomes an HTTP status and
// a gRPC code; KServe HTTP, binary, OpenAI and gRPC routes all go through it.
//
// Choices, following Triton where Triton has one:
//   - an unknown model or version is 404 / NOT_FOUND;
//   - a model that exists but is not ready (loading, unloading, failed) is
//     503 / UNAVAILABLE, as Triton's UNAVAILABLE maps to 503;
//   - a full queue is 503 / UNAVAILABLE with Retry-After (the client should
//     come back, nothing is wrong with its request);
//   - a request whose `timeout` expired before it ran is 504 /
//     DEADLINE_EXCEEDED, so that clients can tell "too slow" from "too busy".
var errorTable = map[errorKind]errorStatus{
	kindInvalidInput:    {http.StatusBadRequest, codes.InvalidArgument},
	kindNotFound:        {http.StatusNotFound, codes.NotFound},
	kindUnavailable:     {http.StatusServiceUnavailable, codes.Unavailable},
	kindOverloaded:      {http.StatusServiceUnavailable, codes.Unavailable},
	kindTimeout:         {http.StatusGatewayTimeout, codes.DeadlineExceeded},
	kindInternal:        {http.StatusInternalServerError, codes.Internal},
	kindTooLarge:        {http.StatusRequestEntityTooLarge, codes.ResourceExhausted},
	kindUnauthenticated: {http.StatusUnauthorized, codes.Unauthenticated},
	kindUnsupported:     {http.StatusBadRequest, codes.Unimplemented},
}

// apiError is an error the protocol layer itself raises (decode and
// validation failures); repository errors are classified into the same kinds.
type apiError struct {
	kind       errorKind
	msg        string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.msg }

// invalidf is the common case: the request is wrong and the message says how.
func invalidf(format string, args ...any) error {
	return &apiError{kind: kindInvalidInput, msg: fmt.Sprintf(format, args...)}
}

func errorf(kind errorKind, format string, args ...any) error {
	return &apiError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// classify turns any error met on a request path into its kind, message and
// Retry-After hint.
func classify(err error) (errorKind, string, time.Duration) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.kind, ae.msg, ae.retryAfter
	}
	var re *repository.Error
	if errors.As(err, &re) {
		return repositoryKind(re.Kind), err.Error(), re.RetryAfter
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return kindTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), 0
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return kindTimeout, "request timed out: " + err.Error(), 0
	case errors.Is(err, context.Canceled):
		return kindUnavailable, "request cancelled: " + err.Error(), 0
	}
	return kindInternal, err.Error(), 0
}

// repositoryKind names repository's kinds in the protocol layer's terms; the
// names are the same, so this is a renaming, not a second table.
func repositoryKind(k repository.ErrorKind) errorKind {
	switch k {
	case repository.NotFound:
		return kindNotFound
	case repository.Unavailable:
		return kindUnavailable
	case repository.InvalidInput:
		return kindInvalidInput
	case repository.Overloaded:
		return kindOverloaded
	case repository.Timeout:
		return kindTimeout
	default:
		return kindInternal
	}
}

// writeError answers an HTTP request with the table's status and the
// {"error": "..."} body every route uses (KServe, Triton and OpenAI alike:
// OpenAI's client libraries accept a string there).
func writeError(w http.ResponseWriter, err error) {
	kind, msg, retry := classify(err)
	st := errorTable[kind]
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if kind == kindOverloaded || kind == kindUnavailable {
		// A model loading, unloading or not ready comes back as overload
		// does: the client should retry, later.
		h.Set("Retry-After", retryAfterSeconds(retry))
	}
	if kind == kindUnauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="m3ectl"`)
	}
	w.WriteHeader(st.http)
	buf := getBuffer()
	b := append((*buf)[:0], `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
	*buf = b
	putBuffer(buf)
}

// grpcError converts an error to a gRPC status through the same table.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (a handler's own answer)
	}
	kind, msg, retry := classify(err)
	return grpcStatus(kind, msg, retry)
}
