package serve

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
)

// A large answer leaves in one write system call. net/http writes a
// response through a 4 KiB connection buffer: an embedding answer (~10 KB
// of JSON for 768 floats) goes out as the buffer's 4 KiB (status line,
// headers, the start of the body) and then the rest, two writes and, on
// loopback, two passes through the receiver's TCP stack, charged to the
// server. The HTTP listener's connections can be corked by the handler:
// while corked, writes collect in a buffer; the handler flushes net/http's
// buffers into it and uncorks, which writes everything at once. Bytes on
// the wire are unchanged; only their grouping into writes is.

// corkMin is the body size from which writeBody corks: a smaller body and
// its headers (a few hundred bytes) fit net/http's 4 KiB connection
// buffer, which net/http writes once, when the handler returns.
const corkMin = 4096 - 512

// corkListener wraps the HTTP listener's connections in corkConns over
// lazyConns (deadline.go), and keeps them in open while they are (see
// openConns).
type corkListener struct {
	net.Listener
	open *openConns
}

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	k := &corkConn{Conn: &lazyConn{Conn: c}, open: l.open}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			k.raw = raw
		}
	}
	l.open.add(k)
	return k, nil
}

// corkConn is a connection whose writes can be held and sent as one. Only
// the goroutine serving the connection's current request writes to it
// (HTTP/1.x), so it needs no lock. It also carries what the client-gone
// watcher needs (clientgone.go).
type corkConn struct {
	net.Conn
	corked bool
	buf    *[]byte
	open   *openConns

	raw     syscall.RawConn    // for the watcher's peek; nil: not watched
	cancel  context.CancelFunc // the connection's context (withConnCancel)
	watched atomic.Int64       // a handler the watcher covers runs since this tick (0: none)
	skipBG  atomic.Bool        // answer net/http's next background read at once
}

// Read answers net/http's background read (the only one-byte read of a
// connection while a handler reads its body: net/http's own reads fill a
// 4 KiB buffer or a body's) with nothing when skipBackgroundRead asked for
// it. Answered so, any other read would only be retried (net/http's
// buffered reader retries empty reads).
func (c *corkConn) Read(p []byte) (int, error) {
	if len(p) == 1 && c.skipBG.Load() && c.skipBG.CompareAndSwap(true, false) {
		return 0, nil
	}
	return c.Conn.Read(p)
}

// Close takes the connection out of the open set and releases its context.
func (c *corkConn) Close() error {
	c.open.remove(c)
	if c.cancel != nil {
		c.cancel()
	}
	return c.Conn.Close()
}

func (c *corkConn) Write(p []byte) (int, error) {
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps the half-close net/http does after some error answers.
func (c *corkConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *corkConn) cork() {
	c.corked = true
	c.buf = getBuffer()
}

// uncork writes what collected; a failed write closes the connection, as
// net/http would after a failed write of its own.
func (c *corkConn) uncork() {
	c.corked = false
	if len(*c.buf) > 0 {
		if _, err := c.Conn.Write(*c.buf); err != nil {
			_ = c.Conn.Close()
		}
	}
	putBuffer(c.buf)
	c.buf = nil
}

// corkKey carries a request's *corkConn in its context.
type corkKey struct{}

// httpConnContext is http.Server.ConnContext: connContext's, plus the
// corkConn under the connection's other wrappers for writeBody.
func httpConnContext(ctx context.Context, c net.Conn) context.Context {
	ctx = connContext(ctx, c)
	if k := corkOf(c); k != nil {
		return context.WithValue(withConnCancel(ctx, k), corkKey{}, k)
	}
	return ctx
}

// writeBody writes a whole answer whose headers (Content-Length included)
// are set: large ones in one write system call (see above).
func writeBody(w http.ResponseWriter, r *http.Request, b []byte) {
	k, _ := r.Context().Value(corkKey{}).(*corkConn)
	f, canFlush := w.(http.Flusher)
	if k == nil || !canFlush || len(b) < corkMin {
		_, _ = w.Write(b)
		return
	}
	k.cork()
	defer k.uncork()
	_, _ = w.Write(b)
	f.Flush()
}

// writeJSONBody writes a whole JSON answer with its Content-Length, so it
// leaves in one write like KServe's (net/http would otherwise send a body
// it has not seen the end of chunked, in two).
func writeJSONBody(w http.ResponseWriter, r *http.Request, b []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	writeBody(w, r, b)
}
