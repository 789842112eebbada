package serve

import (
	"bytes"
	"net"
	"time"
)

// handOff gives the connection and the bytes read from it to net/http;
// false when net/http no longer accepts (the connection is then closed).
func (lc *laneConn) handOff() bool {
	pre, _ := lc.br.Peek(lc.br.Buffered())
	hc := &handedConn{Conn: lc.c, pre: bytes.Clone(pre)}
	// net/http's ConnContext gives the connection a context of its own;
	// the lane's ends here.
	if k := corkOf(lc.c); k != nil && k.cancel != nil {
		k.cancel()
	}
	_ = lc.c.SetReadDeadline(time.Time{})
	select {
	case lc.l.handoff <- hc:
		return true
	case <-lc.l.done:
		return false
	}
}

// handedConn is a connection the lane handed to net/http, with the bytes
// the lane had read from it first.
type handedConn struct {
	net.Conn
	pre []byte
}

func (c *handedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite keeps the half-close net/http does after some error answers.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// corkOf finds the corkConn under c's wrappers.
func corkOf(c net.Conn) *corkConn {
	for {
		switch v := c.(type) {
		case *corkConn:
			return v
		case *cappedConn:
			c = v.Conn
		case *jsonErrorConn:
			c = v.Conn
		case *handedConn:
			c = v.Conn
		default:
			return nil
		}
	}
}
