package serve

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// deadlineCounter counts the deadline changes that reach the connection.
type deadlineCounter struct {
	net.Conn
	reads, writes atomic.Int32
}

func (c *deadlineCounter) SetReadDeadline(t time.Time) error {
	c.reads.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineCounter) SetWriteDeadline(t time.Time) error {
	c.writes.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

func lazyPipe(t *testing.T) (*lazyConn, *deadlineCounter, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	cc := &deadlineCounter{Conn: a}
	return &lazyConn{Conn: cc}, cc, b
}

// readWithin runs a Read of c and returns its error, failing the test if
// it has not returned within d.
func readWithin(t *testing.T, c net.Conn, d time.Duration) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		t.Fatalf("Read still blocked after %s", d)
		return nil
	}
}

// TestLazyDeadlineKeepsNetHTTPSemantics: what net/http relies on still
// holds — a deadline set while nothing reads applies to the next read, one
// set in the past ends a read that is blocked (net/http's abortPendingRead,
// the drain deadline), clearing it before the read leaves the read
// unbounded, and the write deadline works the same way.
func TestLazyDeadlineKeepsNetHTTPSemantics(t *testing.T) {
	t.Run("set while idle applies to the next read", func(t *testing.T) {
		c, _, _ := lazyPipe(t)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		if err := readWithin(t, c, 5*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read returned %v, want a deadline error", err)
		}
	})
	t.Run("a past deadline ends a blocked read", func(t *testing.T) {
		c, _, _ := lazyPipe(t)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond) // let the read block
		_ = c.SetReadDeadline(time.Unix(1, 0))
		select {
		case err := <-errc:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read returned %v, want a deadline error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a past deadline did not end the blocked read")
		}
	})
	t.Run("cleared before the read", func(t *testing.T) {
		c, _, peer := lazyPipe(t)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_ = c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(50 * time.Millisecond)
			_, _ = peer.Write([]byte("x"))
		}()
		if err := readWithin(t, c, 5*time.Second); err != nil {
			t.Fatalf("Read returned %v, want the peer's byte", err)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		c, _, _ := lazyPipe(t)
		_ = c.SetWriteDeadline(time.Unix(1, 0))
		if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write returned %v, want a deadline error", err)
		}
	})
}

// TestLazyDeadlineSkipsRepeats: net/http's deadlines for a run of
// keep-alive requests, a few milliseconds apart, reach the connection a
// handful of times instead of six times a request.
func TestLazyDeadlineSkipsRepeats(t *testing.T) {
	c, cc, peer := lazyPipe(t)
	go func() {
		b := make([]byte, 64)
		for {
			if _, err := peer.Read(b); err != nil {
				return
			}
		}
	}()
	const requests = 200
	for i := 0; i < requests; i++ {
		now := time.Now()
		// (*conn).readRequest, then the background read, then the answer.
		_ = c.SetWriteDeadline(now.Add(120 * time.Second))
		_ = c.SetReadDeadline(now.Add(60 * time.Second))
		_ = c.SetReadDeadline(time.Time{})
		if _, err := c.Write([]byte("answer")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetWriteDeadline(time.Time{})
		// The idle timeout while the next request is awaited, read.
		_ = c.SetReadDeadline(now.Add(120 * time.Second))
		go func() { _, _ = peer.Write([]byte("GET")) }()
		if _, err := c.Read(make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(now.Add(10 * time.Second))
	}
	if r, w := cc.reads.Load(), cc.writes.Load(); r > 2 || w > 2 {
		t.Errorf("%d requests changed the read deadline %d times and the write deadline %d times, want at most 2 each", requests, r, w)
	}
}
