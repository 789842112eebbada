package serve

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cappedListener bounds the connections one listener holds open. Past the
// cap a new connection is accepted and closed at once (rather than left in
// the kernel's backlog, where it would hold a descriptor and wait), with a
// log line at most every 10 s. Each listener has its own cap, so a flood of
// gRPC connections cannot starve the HTTP port, where the health checks are
// (before: two clients holding ~10,000 idle gRPC connections each reached
// the process's descriptor limit and /v2/health/live timed out).
type cappedListener struct {
	net.Listener
	max     int64
	what    string
	log     *slog.Logger
	open    atomic.Int64
	refused atomic.Int64
	lastLog atomic.Int64 // unix nanoseconds of the last "limit reached" line
}

func capListener(l net.Listener, max int, what string, log *slog.Logger) net.Listener {
	if l == nil || max <= 0 {
		return l
	}
	return &cappedListener{Listener: l, max: int64(max), what: what, log: log}
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &cappedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		_ = c.Close()
		now := time.Now().UnixNano()
		if last := l.lastLog.Load(); now-last > int64(10*time.Second) && l.lastLog.CompareAndSwap(last, now) {
			l.log.Warn("connection limit reached: closing new connections (--max-connections)",
				"protocol", l.what, "addr", l.Addr().String(), "limit", l.max, "refused_so_far", l.refused.Load())
		}
	}
}

type cappedConn struct {
	net.Conn
	l    *cappedListener
	once sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
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
