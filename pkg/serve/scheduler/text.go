package scheduler

import (
	"sync"
	"sync/atomic"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// The engine's JSON text of a batch (engine.Text) stays in the engine's
// memory until every request that got rows of it has written its answer:
// copying ~8.5 KB a row on the instance's goroutine cost a serving cycle
// more than formatting the floats in the handlers had (and its garbage kept
// the collector busy). A batch's text is shared by its requests through a
// textShare; a request releases its shares once its answer is out, or at
// once when it fails or was given up.

// textShare counts the requests still holding rows of one batch's text.
type textShare struct {
	n       atomic.Int32
	release func()
}

func (sh *textShare) done() {
	if sh.n.Add(-1) == 0 {
		sh.release()
	}
}

// requestText is a request's hold on engine text: the shares its rows
// point into, and whether it still takes rows (false once it failed, was
// given up or released them).
type requestText struct {
	mu     sync.Mutex
	shares []*textShare
	closed bool
}

// hand gives req rows of sh's batch text (finish, one call per request and
// batch); it says false, and keeps nothing, when req no longer takes text.
func (t *requestText) hand(sh *textShare) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.shares = append(t.shares, sh)
	return true
}

// close releases every share and takes no more.
func (t *requestText) close() {
	t.mu.Lock()
	shares := t.shares
	t.shares, t.closed = nil, true
	t.mu.Unlock()
	for _, sh := range shares {
		sh.done()
	}
}

// handText gives the live rows that asked for text their row of x.text,
// which the requests then own (finish).
func (s *Scheduler) handText(x *executor) {
	txt := &x.text
	if len(txt.Rows) != len(x.live) {
		releaseText(txt)
		return
	}
	release := txt.Release
	txt.Release = nil
	if release == nil {
		release = func() {}
	}
	sh := &textShare{release: release}
	sh.n.Store(1) // this function's own hold, dropped at the end
	for i, r := range x.live {
		req := r.req
		if req.text == nil {
			continue
		}
		// A request takes the share with the first of each run of its
		// rows in live (usually one run); every hold is released once.
		if i == 0 || x.live[i-1].req != req {
			sh.n.Add(1)
			if !req.hold.hand(sh) {
				sh.done()
				continue
			}
		}
		req.text[r.idx] = txt.Rows[i]
	}
	sh.done()
}

// releaseText gives an engine text nobody took back to the engine.
func releaseText(txt *engine.Text) {
	if txt.Release != nil {
		txt.Release()
		txt.Release = nil
	}
}

// floats is the request's float rows, made on first use (finish; rows of
// one request may finish in batches on several instances at once).
func (r *request) floats(dim int) []float32 {
	r.outOnce.Do(func() {
		if r.out == nil {
			r.out = make([]float32, r.rows()*dim)
		}
	})
	return r.out
}

// zeros backs zeroFloats: read-only zeros, replaced by a longer slice
// when a request needs more (under growMu), read without a lock.
var zeros struct {
	v      atomic.Pointer[[]float32]
	growMu sync.Mutex
}

// zeroFloats is n read-only zeros: the floats of an InferText answer whose
// every row came with text (they are not read; only their count is).
func zeroFloats(n int) []float32 {
	if v := zeros.v.Load(); v != nil && len(*v) >= n {
		return (*v)[:n:n]
	}
	zeros.growMu.Lock()
	defer zeros.growMu.Unlock()
	v := zeros.v.Load()
	if v == nil || len(*v) < n {
		old := 0
		if v != nil {
			old = len(*v)
		}
		grown := make([]float32, max(n, 2*old))
		v = &grown
		zeros.v.Store(v)
	}
	return (*v)[:n:n]
}
