package repository

import "github.com/m3ectl/m3ectl/pkg/serve/scheduler"

// Error is the typed error of the serving core. It is the scheduler's type
// under this package's name, so one errors.As(err, &*repository.Error)
// classifies both repository errors (NotFound, Unavailable) and batcher
// errors (InvalidInput, Overloaded, Timeout).
type Error = scheduler.Error

// ErrorKind says what kind of failure an Error is; the protocol layer maps
// each kind to one HTTP status and one gRPC code.
type ErrorKind = scheduler.ErrorKind

// Error kinds, re-exported from the scheduler.
const (
	Internal     = scheduler.Internal
	NotFound     = scheduler.NotFound
	Unavailable  = scheduler.Unavailable
	InvalidInput = scheduler.InvalidInput
	Overloaded   = scheduler.Overloaded
	Timeout      = scheduler.Timeout
)

func errorf(kind ErrorKind, format string, args ...any) *Error {
	return scheduler.Errorf(kind, format, args...)
}
