package serve

import (
	"net"
	"sync"
	"time"
)

// net/http moves a keep-alive connection's deadlines six to eight times a
// request (server.go@go1.26 (*conn).readRequest and (*conn).serve: the
// write deadline before the handler and back to none after it; the read
// deadline for the whole request, none for the background read, the
// idle timeout after the answer, the header timeout once the next request
// starts), each a change of a runtime timer under the descriptor's lock.
// A deadline only matters to a read or write that runs, so the HTTP
// listener's connections keep the deadline net/http asks for and set it
// on the descriptor when a read or write starts, or at once when one is
// running (net/http cutting its own background read short, the drain
// deadline ending a body read). A deadline set on the descriptor is set
// 1/64 of its distance later (a 120 s timeout fires within 122 s), and
// one already set that late as most is kept: the next request's deadlines,
// a few milliseconds later, need no change of the timer at all.

// deadlineSlack is the fraction of a timeout (1/deadlineSlack) a deadline
// may fire late.
const deadlineSlack = 64

// lazyDeadline is one direction's deadline of a connection.
type lazyDeadline struct {
	mu   sync.Mutex
	want time.Time // what was asked for (zero: none)
	have time.Time // what the descriptor has
	busy int       // reads (or writes) running
}

// set records t and applies it to c when an operation runs.
func (d *lazyDeadline) set(c net.Conn, write bool, t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = t
	if d.busy > 0 {
		return d.applyLocked(c, write)
	}
	return nil
}

// begin marks an operation running, with the deadline asked for set.
func (d *lazyDeadline) begin(c net.Conn, write bool) {
	d.mu.Lock()
	d.busy++
	if !d.covered() {
		_ = d.applyLocked(c, write)
	}
	d.mu.Unlock()
}

func (d *lazyDeadline) end() {
	d.mu.Lock()
	d.busy--
	d.mu.Unlock()
}

// covered reports whether the descriptor's deadline is want's, or later
// by at most the slack.
func (d *lazyDeadline) covered() bool {
	if d.want.IsZero() || d.have.IsZero() {
		return d.want.IsZero() && d.have.IsZero()
	}
	return !d.have.Before(d.want) && d.have.Sub(d.want) <= time.Until(d.want)/deadlineSlack
}

func (d *lazyDeadline) applyLocked(c net.Conn, write bool) error {
	t := d.want
	if left := time.Until(t); !t.IsZero() && left > 0 {
		t = t.Add(left / deadlineSlack)
	}
	var err error
	if write {
		err = c.SetWriteDeadline(t)
	} else {
		err = c.SetReadDeadline(t)
	}
	if err == nil {
		d.have = t
	}
	return err
}

// lazyConn is a net.Conn whose deadlines are set lazily (see above).
type lazyConn struct {
	net.Conn
	rd, wd lazyDeadline
}

func (c *lazyConn) Read(p []byte) (int, error) {
	c.rd.begin(c.Conn, false)
	n, err := c.Conn.Read(p)
	c.rd.end()
	return n, err
}

func (c *lazyConn) Write(p []byte) (int, error) {
	c.wd.begin(c.Conn, true)
	n, err := c.Conn.Write(p)
	c.wd.end()
	return n, err
}

func (c *lazyConn) SetReadDeadline(t time.Time) error { return c.rd.set(c.Conn, false, t) }

func (c *lazyConn) SetWriteDeadline(t time.Time) error { return c.wd.set(c.Conn, true, t) }

func (c *lazyConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// CloseWrite keeps the half-close net/http does after some error answers.
func (c *lazyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
