package serve

import (
	"sync"
	"time"
)

// A slow request body must not hold shutdown: when the drain deadline
// passes, every pending body read ends and its client is answered 503
// (drain.go). The HTTP listener's connections are kept in a set while they
// are open, and the deadline sets each one's read deadline to now, right
// after cancelling the request contexts (so that the failed read is seen
// as cut by the drain). This used to be a context.AfterFunc per request in
// readBody: three allocations and two lock round trips on every request,
// for an event that happens at most once in a process's life.

// openConns is the set of a listener's open connections.
type openConns struct {
	mu sync.Mutex
	m  map[*corkConn]struct{}
}

func (o *openConns) add(c *corkConn) {
	o.mu.Lock()
	if o.m == nil {
		o.m = map[*corkConn]struct{}{}
	}
	o.m[c] = struct{}{}
	o.mu.Unlock()
}

func (o *openConns) remove(c *corkConn) {
	o.mu.Lock()
	delete(o.m, c)
	o.mu.Unlock()
}

// expireReads ends every pending and future read on the open connections
// (net/http sets its own read deadlines again only for a next request,
// which a closing server answers 503 or never reads).
func (o *openConns) expireReads() {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for c := range o.m {
		_ = c.Conn.SetReadDeadline(now)
	}
}
