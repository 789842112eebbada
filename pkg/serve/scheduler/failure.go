package scheduler

import (
	"context"
	"errors"

	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
)

// failureReason classifies a failed request as Triton core does for
// nv_inference_request_failure: the queue refusing it (full, or its queue
// timeout passed) is REJECTED, the client going away CANCELED, the engine
// failing BACKEND, and the rest (invalid input, an unloading model) OTHER.
func failureReason(ctx context.Context, err error) metrics.FailureReason {
	if ctx != nil && errors.Is(ctx.Err(), context.Canceled) {
		return metrics.Canceled
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Kind {
		case Overloaded, Timeout:
			return metrics.Rejected
		case Internal:
			return metrics.Backend
		}
		return metrics.Other
	}
	switch {
	case errors.Is(err, context.Canceled):
		return metrics.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return metrics.Rejected
	}
	return metrics.Backend
}
