package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// cappedListener bounds the connections one listener holds open. Each
// listener has its own cap, so a flood of gRPC connections cannot starve
// the HTTP port (before: two clients holding ~10,000 idle gRPC connections
// each reached the process's descriptor limit and /v2/health/live timed
// out). At the cap, as nginx and HAProxy do with idle keep-alive
// connections, the least recently active idle connection is closed to make
// room: one with no request running (no HTTP handler, no gRPC RPC) and none
// ended for evictIdleAfter (or, if it never had one, accepted that long
// ago), which covers connections that never sent a whole request (trickled
// header bytes do not count as activity).
// So a flood of idle connections on the HTTP port itself no longer keeps
// the health checks out. Only when every connection is busy or recently
// active is the newcomer closed at once (rather than left in the kernel's
// backlog, where it would hold a descriptor and wait). Both are logged at
// most every 10 s.
type cappedListener struct {
	net.Listener
	max     int64
	what    string
	log     *slog.Logger
	open    atomic.Int64
	refused atomic.Int64
	evicted atomic.Int64
	lastLog atomic.Int64 // unix nanoseconds of the last "limit reached" line

	mu    sync.Mutex
	conns map[*cappedConn]struct{}
}

// evictIdleAfter is how long a connection must have been without a
// request before it may be closed to make room for a new one.
const evictIdleAfter = time.Second

func capListener(l net.Listener, max int, what string, log *slog.Logger) net.Listener {
	if l == nil || max <= 0 {
		return l
	}
	return &cappedListener{Listener: l, max: int64(max), what: what, log: log, conns: map[*cappedConn]struct{}{}}
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return l.track(c), nil
		}
		if v := l.victim(); v != nil {
			_ = v.Close()
			l.evicted.Add(1)
			l.logLimit("connection limit reached: closed the least recently active idle connection to make room (--max-connections)")
			return l.track(c), nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		_ = c.Close()
		l.logLimit("connection limit reached and no connection idle: closing new connections (--max-connections)")
	}
}

func (l *cappedListener) logLimit(msg string) {
	now := time.Now().UnixNano()
	if last := l.lastLog.Load(); now-last > int64(10*time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn(msg, "protocol", l.what, "addr", l.Addr().String(), "limit", l.max,
			"evicted_so_far", l.evicted.Load(), "refused_so_far", l.refused.Load())
	}
}

func (l *cappedListener) track(c net.Conn) *cappedConn {
	cc := &cappedConn{Conn: c, l: l}
	cc.last.Store(time.Now().UnixNano())
	l.mu.Lock()
	l.conns[cc] = struct{}{}
	l.mu.Unlock()
	return cc
}

// victim takes out of the set the least recently active idle connection,
// or returns nil when none has been idle for evictIdleAfter.
func (l *cappedListener) victim() *cappedConn {
	before := time.Now().Add(-evictIdleAfter).UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	var v *cappedConn
	for c := range l.conns {
		if c.active.Load() == 0 && c.last.Load() <= before && (v == nil || c.last.Load() < v.last.Load()) {
			v = c
		}
	}
	if v != nil {
		delete(l.conns, v)
	}
	return v
}

type cappedConn struct {
	net.Conn
	l      *cappedListener
	active atomic.Int32 // requests (HTTP handlers, gRPC RPCs) running
	last   atomic.Int64 // unix nanoseconds of the accept or the last request's end
	once   sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.open.Add(-1)
	})
	return err
}

// CloseWrite passes net/http's half-close after a 431 through.
func (c *cappedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// begin and end bracket a request; only the end needs the time (while
// one runs, the connection is not idle whatever its last).
func (c *cappedConn) begin() { c.active.Add(1) }
func (c *cappedConn) end()   { c.last.Store(time.Now().UnixNano()); c.active.Add(-1) }

// connKey carries a request's *cappedConn in its context.
type connKey struct{}

// connContext is http.Server.ConnContext: it hands the connection to
// trackRequests.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*handedConn); ok { // from the lane (lane.go)
		c = hc.Conn
	}
	if cc, ok := c.(*cappedConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// trackRequests marks a connection busy while one of its requests runs.
func trackRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cc, ok := r.Context().Value(connKey{}).(*cappedConn); ok {
			cc.begin()
			defer cc.end()
		}
		h.ServeHTTP(w, r)
	})
}

// connCreds are plaintext transport credentials (what the server runs
// without credentials) whose handshake hands each gRPC connection's
// *cappedConn to the RPCs on it, as their peer's AuthInfo: grpc-go hides
// its connections from handlers, and a stats handler, the other place
// where a connection and its RPCs meet, made grpc-go build ~17 more
// objects per RPC for its events. The interceptors mark the connection
// busy while an RPC runs (ModelInfer's from before its message is read).
type connCreds struct{}

// connInfo is the AuthInfo connCreds attach: no security, as insecure's.
type connInfo struct {
	credentials.CommonAuthInfo
	cc *cappedConn
}

func (connInfo) AuthType() string { return "insecure" }

func (connCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cc, _ := c.(*cappedConn)
	return c, connInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, cc: cc}, nil
}

func (connCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("connCreds are server-side only")
}

func (connCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}

func (c connCreds) Clone() credentials.TransportCredentials { return c }

func (connCreds) OverrideServerName(string) error { return nil }

// rpcConn is the connection an RPC came on, or nil.
func rpcConn(ctx context.Context) *cappedConn {
	if p, ok := peer.FromContext(ctx); ok {
		if ci, ok := p.AuthInfo.(connInfo); ok {
			return ci.cc
		}
	}
	return nil
}

// defaultMaxConnections is the per-listener cap when none is configured:
// 4096, or less when the descriptor limit would not leave room for three
// full listeners and the engines' own files.
func defaultMaxConnections() int {
	const want = 4096
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return want
	}
	if rl.Cur < 512 {
		return 64
	}
	return int(max(64, min(uint64(want), (rl.Cur-256)/4)))
}
