package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FailureReason is the `reason` label of nv_inference_request_failure, with
// Triton core's values (src/infer_stats.h FailureReason and
// src/metric_model_reporter.cc failure_reasons_map, triton-inference-server/core
// at 73aad7c).
type FailureReason string

// Triton's failure reasons.
const (
	Rejected FailureReason = "REJECTED" // refused by the queue: full, or timed out waiting
	Canceled FailureReason = "CANCELED" // the client went away
	Backend  FailureReason = "BACKEND"  // the engine failed
	Other    FailureReason = "OTHER"    // anything else: invalid input, unloading
)

// Reasons lists every reason; each is exported from the start at zero, as
// Triton does, so that rate() over a reason that has not happened yet works.
var Reasons = []FailureReason{Rejected, Canceled, Backend, Other}

// Failed records one failed request with its reason.
func (m *Model) Failed(reason FailureReason, total time.Duration) {
	if m == nil {
		return
	}
	m.requestSeconds.Observe(total.Seconds())
	m.failure.With(prometheus.Labels{"reason": string(reason)}).Inc()
}

// initFailures creates the zero series of every reason.
func (m *Model) initFailures() {
	for _, r := range Reasons {
		m.failure.With(prometheus.Labels{"reason": string(r)})
	}
}
