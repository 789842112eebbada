package scheduler

import (
	"context"
	"errors"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
)

func TestFailureReason(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want metrics.FailureReason
	}{
		{"queue full", context.Background(), &Error{Kind: Overloaded}, metrics.Rejected},
		{"queue timeout", context.Background(), &Error{Kind: Timeout}, metrics.Rejected},
		{"client gone", cancelled, &Error{Kind: Unavailable}, metrics.Canceled},
		{"engine failed", context.Background(), &Error{Kind: Internal}, metrics.Backend},
		{"bad input", context.Background(), &Error{Kind: InvalidInput}, metrics.Other},
		{"unloading", context.Background(), &Error{Kind: Unavailable}, metrics.Other},
		{"raw engine error", context.Background(), errors.New("cuda: out of memory"), metrics.Backend},
	}
	for _, tc := range tests {
		if got := failureReason(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
