package scheduler

import (
	"fmt"
	"strings"
)

// Policy is how a model's queue turns into batches.
type Policy int

// Batching policies.
const (
	// PolicyTriton is Triton's dynamic batcher: a batch is cut when it is
	// full (max_batch_size, the largest preferred size or the token budget)
	// or when its oldest row has waited max_queue_delay, whichever comes
	// first (model_config.proto@r24.01, ModelDynamicBatching). It is the
	// default of a config with a dynamic_batching block.
	PolicyTriton Policy = iota
	// PolicyContinuous is text-embeddings-inference's queue
	// (core/src/infer.rs@02506d0b, batching_task and
	// backend_task): an idle instance takes
	// whatever is queued at once, never waiting to fill a batch, and what
	// arrives while every instance is busy forms the next batch, capped by
	// max_batch_size and the token budget. A lone request runs at once; under
	// load batches are as full as the arrival rate makes them. One exception
	// (filler, unless Config.NoWait): where closed-loop clients are measured
	// to be served more by lock-step, an idle instance waits, at most one
	// batch's time, for the clients it has just answered.
	PolicyContinuous
)

// Names of the policies in config.pbtxt's BATCHING_POLICY parameter and
// serve's --batching flag.
const (
	PolicyNameTriton     = "triton"
	PolicyNameContinuous = "continuous"
)

// String names the policy as ParsePolicy reads it.
func (p Policy) String() string {
	if p == PolicyContinuous {
		return PolicyNameContinuous
	}
	return PolicyNameTriton
}

// ParsePolicy reads a policy name, case-insensitively; "dynamic" is
// accepted for triton, the name of the config block it follows.
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case PolicyNameTriton, "dynamic":
		return PolicyTriton, nil
	case PolicyNameContinuous:
		return PolicyContinuous, nil
	}
	return 0, fmt.Errorf("batching policy %q: want %s or %s", s, PolicyNameContinuous, PolicyNameTriton)
}
