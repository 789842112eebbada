package scheduler

import (
	"fmt"
	"regexp"
	"time"
)

// ErrorKind says what went wrong with a request, in the terms the protocol
// layer maps to an HTTP status and a gRPC code (in one table, pkg/serve).
type ErrorKind int

// Error kinds. The repository package re-exports them under the same names.
const (
	Internal     ErrorKind = iota // a bug or an engine failure
	NotFound                      // no such model or version
	Unavailable                   // the model exists but is not ready (loading, failed, unloading)
	InvalidInput                  // the request is wrong; the message says how
	Overloaded                    // the queue is full; retry after RetryAfter
	Timeout                       // the request's deadline passed before it ran
)

// String names the kind as logs and tests print it.
func (k ErrorKind) String() string {
	switch k {
	case NotFound:
		return "not found"
	case Unavailable:
		return "unavailable"
	case InvalidInput:
		return "invalid input"
	case Overloaded:
		return "overloaded"
	case Timeout:
		return "timeout"
	default:
		return "internal"
	}
}

// Error is the typed error of every request path in serving: callers branch
// on Kind (errors.As), and show Msg to the client as is.
type Error struct {
	Kind       ErrorKind
	Msg        string
	RetryAfter time.Duration // Overloaded only: when trying again makes sense
}

// Error implements error.
func (e *Error) Error() string { return e.Msg }

// Errorf builds an *Error of the given kind.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// absPath is an absolute file path in an engine's message.
var absPath = regexp.MustCompile(`(?:/[^/\s:"']+)+/([^/\s:"']+)`)

// withoutPaths shortens the absolute paths in an engine error to their
// last element for the client (model.onnx, not /srv/models/m3e/1/model.onnx);
// the full error is in the server's log.
func withoutPaths(msg string) string { return absPath.ReplaceAllString(msg, "$1") }
