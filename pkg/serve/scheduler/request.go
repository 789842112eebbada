package scheduler

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// request is one Infer call in flight.
type request struct {
	ctx     context.Context
	ids     []int32 // all rows' tokens end to end
	offsets []int32 // row i is ids[offsets[i]:offsets[i+1]]
	// out holds the rows' floats; an InferText request gets it only when
	// a batch of its rows needs it (floats), since rows answered from the
	// engine's text are not read as floats.
	out     []float32
	outOnce sync.Once
	// text is each row's embedding as JSON text (engine.Text), for a
	// request that asked for it (InferText) once the engine wrote it; nil
	// otherwise, and a nil row is the caller's to format.
	text [][]byte
	hold requestText // the engine text text's rows point into

	arrived, enqueued time.Time
	remaining         atomic.Int32  // rows not yet computed
	state             atomic.Int32  // stateWaiting, stateAnswered, stateAbandoned
	queueNS           atomic.Int64  // enqueue → first row executing, ns; 0 until then
	lastBatch         atomic.Uint64 // seq of the last batch that counted it
	computeInput      atomic.Int64
	computeInfer      atomic.Int64
	computeOutput     atomic.Int64
	err               error
	done              chan struct{}
}

const (
	stateWaiting int32 = iota
	stateAnswered
	stateAbandoned
)

func (r *request) rows() int { return len(r.offsets) - 1 }

// row is one text of a request, the unit the batcher moves.
type row struct {
	req  *request
	idx  int
	n    int  // tokens
	back bool // counted as a client's return (filler.arrived)
}

func (r row) tokens() []int32 { return r.req.ids[r.req.offsets[r.idx]:r.req.offsets[r.idx+1]] }
