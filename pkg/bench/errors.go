package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// StatusError is a request the server answered with a non-success status:
// an HTTP status code or a gRPC code name.
type StatusError struct {
	// Kind is the error class used in errors_by_kind: "http_503",
	// "grpc_Unavailable", ...
	Kind string
	// Msg is the start of the server's answer, for the probe's error line.
	Msg string
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Msg == "" {
		return e.Kind
	}
	return e.Kind + ": " + e.Msg
}

// Classify names the class of a request error: the server's status
// ("http_503", "grpc_Unavailable"), "timeout", "connection", "canceled" or
// "other". Failed requests are counted by class and never enter latencies.
func Classify(err error) string {
	var se *StatusError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return se.Kind
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var oe *net.OpError
	var ue *url.Error
	if errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || (errors.As(err, &ue) && strings.Contains(ue.Err.Error(), "EOF")) {
		return "connection"
	}
	return "other"
}

// AssertionError is returned by Check when a level misses an --assert
// condition; the CLI exits non-zero with its message.
type AssertionError struct {
	Failed []string // one entry per failed condition and level
}

// Error implements error.
func (e *AssertionError) Error() string {
	return fmt.Sprintf("assertion failed: %s", strings.Join(e.Failed, "; "))
}
