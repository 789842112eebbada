package serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP listener's requests of the plain form every API client sends
// (parseLaneHead) are read and answered by the server's own HTTP/1.1 loop,
// the lane, through the same handler as net/http's: net/http's request
// parsing and response machinery (textproto's header reading, the
// connection state machine, the response's buffers and header snapshot)
// were a fifth of the server's CPU per request on the H200 (docs/gpu.md,
// "Fifth round"). The lane reads each connection itself; the first
// request it does not take (another method, HTTP/1.0, chunked bodies,
// Expect, Upgrade, an escaped path, a malformed head) hands the connection,
// with the bytes it has read, to net/http for good, which serves or refuses
// it as ever. Config.NetHTTPOnly (M3ECTL_HTTP_LANE=0) leaves every
// connection to net/http.
//
// Semantics follow net/http (server.go@go1.26): the request's context
// derives from the connection's (the same ConnContext) and ends with the
// handler; ReadHeaderTimeout runs from a head's first byte, IdleTimeout
// between requests, ReadTimeout from the head over the body, WriteTimeout
// from the head over the answer; a body the handler left unread is
// discarded up to 256 KiB, beyond that the connection closes; a panic
// other than http.ErrAbortHandler is the handler's to recover (api does),
// ErrAbortHandler closes the connection.

// laneReadBuf is a lane connection's read buffer: a head that does not fit
// goes to net/http (whose limit is MaxHeaderBytes, 1 MiB).
const laneReadBuf = 4096

// laneDiscardMax is how much unread body is discarded to keep a connection
// (net/http's maxPostHandlerReadBytes).
const laneDiscardMax = 256 << 10

// lane is a net.Listener for http.Server.Serve whose Accept returns only
// the connections handed to net/http.
type lane struct {
	s       *Server
	inner   net.Listener
	handoff chan net.Conn
	done    chan struct{}
	once    sync.Once
	start   sync.Once
	err     error // the inner listener's, set before done closes
	closing atomic.Bool
	served  atomic.Int64 // requests answered on the lane (tests)

	mu   sync.Mutex
	live map[*laneConn]struct{}
	wg   sync.WaitGroup
}

func newLane(s *Server, inner net.Listener) *lane {
	return &lane{s: s, inner: inner, handoff: make(chan net.Conn), done: make(chan struct{}), live: map[*laneConn]struct{}{}}
}

// Accept returns the next connection handed to net/http.
func (l *lane) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting (http.Server.Shutdown and Close call it).
func (l *lane) Close() error {
	err := l.inner.Close()
	l.stop(net.ErrClosed)
	return err
}

func (l *lane) Addr() net.Addr { return l.inner.Addr() }

func (l *lane) stop(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

// acceptLoop accepts until the inner listener fails for good. A temporary
// failure (EMFILE, a timeout) is retried after a pause growing from 5 ms
// to 1 s, as http.Server.Serve does (server.go@go1.26).
func (l *lane) acceptLoop() {
	var pause time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var tmp interface{ Temporary() bool }
			if errors.As(err, &tmp) && tmp.Temporary() {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				l.s.log.Debug("HTTP accept failed; retrying", "err", err, "pause", pause)
				select {
				case <-time.After(pause):
					continue
				case <-l.done:
					return
				}
			}
			l.stop(err)
			return
		}
		pause = 0
		lc := &laneConn{l: l, c: c}
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.live[lc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go lc.serve()
	}
}

// shutdown closes the lane's idle connections and waits until the busy
// ones have answered and closed, or ctx ends (then it closes them all).
func (l *lane) shutdown(ctx context.Context) {
	l.closing.Store(true)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		l.mu.Lock()
		for lc := range l.live {
			if lc.idle.Load() {
				_ = lc.c.Close()
			}
		}
		l.mu.Unlock()
		select {
		case <-done:
			return
		case <-ctx.Done():
			l.closeAll()
			<-done
			return
		case <-t.C:
		}
	}
}

func (l *lane) closeAll() {
	l.mu.Lock()
	for lc := range l.live {
		_ = lc.c.Close()
	}
	l.mu.Unlock()
}

// laneConn is one connection the lane reads. One request runs at a time,
// so what a request needs is kept here and reused by the next: the header
// maps, the writer (not its buffer), the request's template and the
// strings of the path, Host and header names and values when they repeat
// (clients send the same ones on every request).
type laneConn struct {
	l    *lane
	c    net.Conn
	br   *bufio.Reader
	idle atomic.Bool // waiting for a request's first byte

	tmpl   *http.Request // the connection's context, remote address and protocol
	url    url.URL
	hdr    http.Header
	w      laneWriter
	target string
	host   string
	names  []string // the previous request's header names and values
	values []string
	vals   []string // backing of hdr's values
}

var laneReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, laneReadBuf) }}

func (lc *laneConn) serve() {
	l, s := lc.l, lc.l.s
	handed := false
	defer func() {
		l.mu.Lock()
		delete(l.live, lc)
		l.mu.Unlock()
		l.wg.Done()
		if !handed {
			_ = lc.c.Close()
		}
	}()
	lc.br = laneReaders.Get().(*bufio.Reader)
	lc.br.Reset(lc.c)
	defer func() {
		lc.br.Reset(nil)
		laneReaders.Put(lc.br)
	}()
	ctx := httpConnContext(s.drain.base, lc.c)
	lc.tmpl = (&http.Request{
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		RemoteAddr: lc.c.RemoteAddr().String(),
	}).WithContext(ctx)
	lc.hdr = make(http.Header, 8)
	lc.vals = make([]string, 0, laneMaxHeaders)
	lc.w.h = make(http.Header, 4)
	var h laneHead
	for first := true; ; first = false {
		head, err := lc.readHead(first)
		if err != nil {
			return
		}
		if head == nil || !parseLaneHead(head, &h) {
			handed = lc.handOff()
			return
		}
		if !lc.serveOne(&h) || l.closing.Load() {
			return
		}
	}
}

// readHead returns the next request's head, still in the read buffer; nil
// when it does not fit the buffer (the connection goes to net/http).
func (lc *laneConn) readHead(first bool) ([]byte, error) {
	cfg := &lc.l.s.cfg
	wait := cfg.IdleTimeout
	if first || wait == 0 {
		wait = cmp(cfg.ReadHeaderTimeout, cfg.ReadTimeout)
	}
	if lc.br.Buffered() == 0 {
		lc.idle.Store(true)
		_ = lc.c.SetReadDeadline(deadlineIn(wait))
		_, err := lc.br.Peek(1)
		lc.idle.Store(false)
		if err != nil {
			return nil, err
		}
		if !first {
			_ = lc.c.SetReadDeadline(deadlineIn(cmp(cfg.ReadHeaderTimeout, cfg.ReadTimeout)))
		}
	}
	for {
		buf, _ := lc.br.Peek(lc.br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], nil
		}
		if len(buf) == lc.br.Size() {
			return nil, nil
		}
		if _, err := lc.br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// cmp is a, or b when a is zero (net/http's ReadHeaderTimeout rule).
func cmp(a, b time.Duration) time.Duration {
	if a == 0 {
		return b
	}
	return a
}

func deadlineIn(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// serveOne reads the body of the request whose head h is, runs the
// handler and writes the answer; false when the connection must close.
// The request's context is the connection's: it ends when the client goes
// (the watcher) or the connection closes; the server's handlers leave
// nothing behind that waits for the end of a request's own.
func (lc *laneConn) serveOne(h *laneHead) (keep bool) {
	cfg := &lc.l.s.cfg
	started := time.Now()
	if _, err := lc.br.Discard(h.size); err != nil {
		return false
	}
	if cfg.ReadTimeout > 0 {
		_ = lc.c.SetReadDeadline(started.Add(cfg.ReadTimeout))
	} else {
		_ = lc.c.SetReadDeadline(time.Time{})
	}
	if cfg.WriteTimeout > 0 {
		_ = lc.c.SetWriteDeadline(started.Add(cfg.WriteTimeout))
	}
	clear(lc.hdr)
	n := len(h.names)
	if cap(lc.names) < n {
		lc.names, lc.values = make([]string, n, laneMaxHeaders), make([]string, n, laneMaxHeaders)
	}
	lc.names, lc.values, lc.vals = lc.names[:n], lc.values[:n], lc.vals[:0]
	for i, n := range h.names {
		if asciiEqualFold(n, "Host") {
			continue // r.Host, as net/http has it
		}
		if lc.names[i] != string(n) {
			lc.names[i] = headerKey(n)
		}
		if lc.values[i] != string(h.values[i]) {
			lc.values[i] = headerValue(h.values[i])
		}
		k, v := lc.names[i], lc.values[i]
		if vs, ok := lc.hdr[k]; ok {
			lc.hdr[k] = append(vs, v)
		} else { // one value, in the connection's backing array
			lc.vals = append(lc.vals, v)
			lc.hdr[k] = lc.vals[len(lc.vals)-1 : len(lc.vals) : len(lc.vals)]
		}
	}
	if lc.target != string(h.target) {
		lc.target = string(h.target)
	}
	if lc.host != string(h.host) {
		lc.host = string(h.host)
	}
	lc.url = url.URL{Path: lc.target}
	body := laneBody{r: lc.br, left: max(h.contentLength, 0)}
	req := new(http.Request)
	*req = *lc.tmpl
	req.Method = http.MethodGet // parseLaneHead takes GET and POST only: no string made per request
	if string(h.method) == http.MethodPost {
		req.Method = http.MethodPost
	}
	req.URL = &lc.url
	req.Header = lc.hdr
	req.ContentLength = max(h.contentLength, 0)
	req.Host = lc.host
	req.RequestURI = lc.target
	req.Close = h.close
	req.Body = http.NoBody
	if h.contentLength > 0 {
		req.Body = &body
	}
	// The answer's buffer comes from the server's pool for this request
	// only: an idle keep-alive connection holds no answer memory.
	w := &lc.w
	clear(w.h)
	w.status = 0
	w.buf = getBuffer()
	*w.buf = append((*w.buf)[:0], make([]byte, laneHeadRoom)...)
	defer func() {
		putBuffer(w.buf)
		w.buf = nil
	}()
	if !lc.runHandler(w, req) {
		return false
	}
	closing := h.close || lc.l.closing.Load()
	if body.left > 0 {
		// The handler left part of the body unread: discard a little to
		// keep the connection, as net/http does; a large rest closes it.
		if body.left > laneDiscardMax {
			closing = true
		} else if _, err := io.Copy(io.Discard, &body); err != nil {
			closing = true
		}
	}
	lc.l.served.Add(1)
	if _, err := lc.c.Write(w.answer(closing)); err != nil {
		return false
	}
	return !closing
}

// runHandler runs the server's HTTP handler; false after a panic of
// http.ErrAbortHandler, which asks for the connection to close unanswered.
func (lc *laneConn) runHandler(w *laneWriter, r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				lc.l.s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
			}
			ok = false
		}
	}()
	lc.l.s.httpHandler.ServeHTTP(w, r)
	return true
}
