package serve

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"
)

// A client that goes away while its request waits (its connection closed
// or half-closed) has the request cancelled, so that a queue full of
// requests nobody waits for any more empties. net/http notices this with a
// background read per request (server.go@go1.26 (*connReader)
// startBackgroundRead): once the handler has read the body to its end, a
// new goroutine blocks in a one-byte read of the connection until the
// answer is written, then net/http interrupts it by setting the read
// deadline to the past, waits for it, and clears the deadline. Per request
// that is a goroutine, a read system call that finds nothing (EAGAIN), a
// park and two wake-ups across goroutines, four deadline changes and a
// condition-variable wait: about a tenth of the server's CPU per request
// outside float formatting, and on a many-core host each wake-up may wake
// an idle thread too.
//
// For the HTTP listener's requests with a body, that read is answered at
// once instead (corkConn.Read returns 0 bytes, which backgroundRead takes
// as "nothing yet" and ends), and one goroutine per server, the watcher,
// looks every clientGoneEvery at each connection whose handler has run for
// a whole tick already, with a non-blocking peek (recv MSG_PEEK|MSG_DONTWAIT):
// end of stream or an error cancels the connection's context, which is
// what net/http's background read did on the same events (it cancels the
// connection's context, the parent of the request's). A peek does not
// take the bytes of a pipelined next request; net/http reads them as
// before. The cost moves from every request to the requests that wait
// longer than a tick, once per tick: none at all while answers take
// milliseconds.

// clientGoneEvery is how often the watcher looks at the connections whose
// handlers run; a request of a client that went away stays queued for at
// most two of them.
const clientGoneEvery = 50 * time.Millisecond

// skipBackgroundRead marks the request's connection so that net/http's
// background read, which the end of the body starts, returns at once, and
// puts the connection under the watcher until the handler returns. It is
// called before the body is read; without a watcher (a Handler embedded
// elsewhere, or a connection without a descriptor) it does nothing.
func (s *Server) skipBackgroundRead(r *http.Request) {
	if !s.watching.Load() {
		return
	}
	k, _ := r.Context().Value(corkKey{}).(*corkConn)
	if k == nil || k.raw == nil || k.cancel == nil {
		return
	}
	k.watched.Store(s.watchTick.Load())
	k.skipBG.Store(true)
}

// unwatchAfter takes the request's connection out of the watcher's view
// when its handler returns (a background read not started by then reads
// for real, and net/http ends it as ever).
func unwatchAfter(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := r.Context().Value(corkKey{}).(*corkConn)
		if k == nil {
			h.ServeHTTP(w, r)
			return
		}
		defer func() {
			if k.watched.Load() != 0 {
				k.skipBG.Store(false)
				k.watched.Store(0)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// watchClients is the watcher: until stop is closed, it peeks each
// clientGoneEvery at the connections watched since before the last tick.
func (s *Server) watchClients(stop <-chan struct{}) {
	t := time.NewTicker(clientGoneEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, k := range s.httpConns.watchedSince(s.watchTick.Add(1) - 2) {
			if clientGone(k) {
				k.cancel()
			}
		}
	}
}

// watchedSince are the open connections watched since tick or before.
func (o *openConns) watchedSince(tick int64) []*corkConn {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ks []*corkConn
	for c := range o.m {
		if w := c.watched.Load(); w != 0 && w <= tick {
			ks = append(ks, c)
		}
	}
	return ks
}

// clientGone peeks at k without blocking and without taking a byte: true
// at the end of the stream (the client closed or half-closed) or on an
// error other than "nothing to read yet". Control holds the descriptor
// open for the call without taking the connection's read lock.
func clientGone(k *corkConn) bool {
	gone := false
	var b [1]byte
	err := k.raw.Control(func(fd uintptr) {
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
			case err != nil || n == 0:
				gone = true
			}
			return
		}
	})
	return gone || err != nil
}

// withConnCancel gives the connection a context of its own that the
// watcher can cancel; the request contexts derive from it.
func withConnCancel(ctx context.Context, k *corkConn) context.Context {
	if k.raw == nil {
		return ctx
	}
	ctx, k.cancel = context.WithCancel(ctx)
	return ctx
}
