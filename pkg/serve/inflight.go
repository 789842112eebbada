package serve

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// The bytes of request data in flight across all requests and protocols
// are bounded by a weighted semaphore (MaxInflightBytes). A request weighs
// decodeFactor times its body: the body, the decoded strings and what
// decoding and tokenising hold besides. A request that does not fit is
// answered at once with 503 + Retry-After (it never waits, so a flood of
// large bodies cannot queue memory either), and one request alone always
// fits. When the budget empties after a burst of large requests, the
// memory is handed back to the OS.

// decodeFactor is what one body byte may cost until its request is
// answered (the target: peak RSS at most 4× the body).
const decodeFactor = 4

// freeAfterBytes is the burst size after which the heap is returned to
// the OS once nothing is in flight.
const freeAfterBytes = 64 << 20

// handBackQuiet is how long the budget must stay empty before the hand-back
// runs: a refused gRPC message is garbage only once its handler has
// answered, which can be after the last admitted request released its
// weight, and a burst ends in a series of such refusals.
const handBackQuiet = 250 * time.Millisecond

// readChunk is how much a body of unknown length reserves at a time.
const readChunk = 1 << 20

type inflightBudget struct {
	sem   *semaphore.Weighted
	total int64
	used  atomic.Int64
	peak  atomic.Int64 // the largest weight used or refused since the last hand-back
	// handBack runs handBackQuiet after the budget last emptied or refused
	// a large request (timer.Reset re-arms it; the callback re-checks).
	handBack  *time.Timer
	handBacks atomic.Int64 // hand-backs done, for tests
}

func newInflightBudget(total int64) *inflightBudget {
	b := &inflightBudget{sem: semaphore.NewWeighted(total), total: total}
	b.handBack = time.AfterFunc(time.Hour, b.giveBack)
	b.handBack.Stop()
	return b
}

// reserve takes n body bytes' worth of the budget, or answers overloaded.
func (b *inflightBudget) reserve(n int64) (int64, error) {
	w := min(n*decodeFactor, b.total)
	if w <= 0 {
		return 0, nil
	}
	if !b.sem.TryAcquire(w) {
		// A refused gRPC message has been received whole: its buffers are
		// part of the burst the hand-back returns.
		if b.notePeak(w) >= freeAfterBytes {
			b.handBack.Reset(handBackQuiet)
		}
		return 0, &apiError{kind: kindOverloaded, retryAfter: time.Second,
			msg: "the server is holding its limit of request data in flight (--max-inflight-bytes); retry shortly"}
	}
	b.notePeak(b.used.Add(w))
	return w, nil
}

// notePeak raises the burst's peak to v and returns the peak.
func (b *inflightBudget) notePeak(v int64) int64 {
	for {
		p := b.peak.Load()
		if v <= p {
			return p
		}
		if b.peak.CompareAndSwap(p, v) {
			return v
		}
	}
}

// release returns w; once the budget has stayed empty for handBackQuiet
// after a large burst, the memory is handed back to the OS.
func (b *inflightBudget) release(w int64) {
	if w == 0 {
		return
	}
	b.sem.Release(w)
	if b.used.Add(-w) == 0 && b.peak.Load() >= freeAfterBytes {
		b.handBack.Reset(handBackQuiet)
	}
}

// giveBack collects twice (the first collection moves sync.Pool contents,
// grpc-go's receive buffers among them, to the victim cache; the second
// frees them) and returns the freed pages to the OS.
func (b *inflightBudget) giveBack() {
	if b.used.Load() != 0 {
		return // the release that empties the budget re-arms the timer
	}
	b.peak.Store(0)
	runtime.GC()
	debug.FreeOSMemory()
	b.handBacks.Add(1)
}

// budgetBody wraps a request body of unknown length: it reserves budget
// for every readChunk bytes before reading them.
type budgetBody struct {
	io.ReadCloser
	b        *inflightBudget
	held     *int64 // weight reserved, released when the handler ends
	covered  int64  // body bytes the reservation covers
	limit    int64  // --max-request-bytes: no reservation needed past it
	consumed int64
	err      error
}

func (r *budgetBody) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	// Past the body limit the reader in front answers 413; past the whole
	// budget this request is the one that fits alone.
	if r.consumed+int64(len(p)) > r.covered && r.covered < r.limit && *r.held < r.b.total {
		w, err := r.b.reserve(min(readChunk, r.limit-r.covered))
		if err != nil {
			r.err = err
			return 0, err
		}
		*r.held += w
		r.covered += min(readChunk, r.limit-r.covered)
	}
	if r.covered < r.limit && *r.held < r.b.total {
		p = p[:min(int64(len(p)), r.covered-r.consumed)]
	}
	n, err := r.ReadCloser.Read(p)
	r.consumed += int64(n)
	return n, err
}

// budgetKey carries a compressed request's hold to readBody.
type budgetKey struct{}

// budgetedInflated wraps the inflated body of a compressed request so that
// what comes out of it is reserved as it is read (the Content-Length of a
// compressed body says nothing about what it inflates to).
func (s *Server) budgetedInflated(r *http.Request, body io.Reader) io.Reader {
	held, ok := r.Context().Value(budgetKey{}).(*int64)
	if !ok {
		return body
	}
	return &budgetBody{ReadCloser: io.NopCloser(body), b: s.budget, held: held, limit: s.cfg.MaxRequestBytes}
}

// withBudget runs an HTTP request with its body's weight reserved: the
// declared Content-Length up front (refused before a byte is read), a
// chunked body as it is read, a compressed one as it inflates. The weight
// is returned when the handler ends.
func (s *Server) withBudget(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(strings.TrimSpace(enc), "identity") {
		var held int64
		defer func() { s.budget.release(held) }()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), budgetKey{}, &held)))
		return
	}
	switch {
	case r.ContentLength > s.cfg.MaxRequestBytes:
		next.ServeHTTP(w, r) // readBody answers 413 without reading
	case r.ContentLength > 0:
		weight, err := s.budget.reserve(r.ContentLength)
		if err != nil {
			writeError(w, err)
			return
		}
		defer s.budget.release(weight)
		next.ServeHTTP(w, r)
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		var held int64
		bb := &budgetBody{ReadCloser: r.Body, b: s.budget, held: &held, limit: s.cfg.MaxRequestBytes}
		defer func() { s.budget.release(held) }()
		r.Body = bb
		next.ServeHTTP(w, r)
	default:
		next.ServeHTTP(w, r)
	}
}
