package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// rawHTTP is the load generator's plain-HTTP path: each request's bytes
// (request line, headers, body) are encoded once, and a request is one
// write and a read of the answer on a kept-alive connection of its own,
// in the calling goroutine. net/http's Transport costs two goroutine
// hand-offs, a header map and a Response per request, as much CPU as the
// server under test spends on its side, so the client's own ceiling
// (--self-test) sat near the server's throughput. The answer is parsed as
// far as HTTP/1.1 framing needs (RFC 9112: status line, Content-Length or
// chunked, Connection: close); https:// URLs keep net/http.
type rawHTTP struct {
	addr   string
	dialer net.Dialer
	reqs   [][]byte
	idle   chan *rawConn
}

type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

// aLongTimeAgo is a deadline in the past: setting it aborts a blocked
// read or write at once (net/http uses the same trick).
var aLongTimeAgo = time.Unix(1, 0)

// newRawHTTP prepares the requests for POSTing bodies to u (http only).
func newRawHTTP(u *url.URL, bodies [][]byte, maxConns int) *rawHTTP {
	host := u.Host
	addr := host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	c := &rawHTTP{addr: addr, dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		idle: make(chan *rawConn, maxConns+16)}
	for _, b := range bodies {
		req := make([]byte, 0, len(b)+160)
		req = fmt.Appendf(req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n", path, host, len(b))
		c.reqs = append(c.reqs, append(req, b...))
	}
	return c
}

// Do sends request i and reads its answer; a connection reused from the
// pool that fails before any answer arrives (the server closed it while
// idle) is retried once on a new one, as net/http retries.
func (c *rawHTTP) Do(ctx context.Context, i int) error {
	req := c.reqs[i%len(c.reqs)]
	for attempt := 0; ; attempt++ {
		var rc *rawConn
		reused := false
		select {
		case rc = <-c.idle:
			reused = true
		default:
			conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
			if err != nil {
				return err
			}
			rc = &rawConn{c: conn, r: bufio.NewReaderSize(conn, 16<<10)}
		}
		keep, answered, err := c.roundTrip(ctx, rc, req)
		if err == nil && keep {
			select {
			case c.idle <- rc:
			default:
				_ = rc.c.Close()
			}
			return nil
		}
		_ = rc.c.Close()
		if err == nil {
			return nil
		}
		if reused && !answered && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// roundTrip writes req and reads the answer: whether the connection can
// be kept, whether any answer byte came, and the request's error.
func (c *rawHTTP) roundTrip(ctx context.Context, rc *rawConn, req []byte) (keep, answered bool, err error) {
	dl, _ := ctx.Deadline()
	_ = rc.c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = rc.c.SetDeadline(aLongTimeAgo) })
	defer func() {
		if !stop() {
			keep = false // the deadline was moved under us
		}
		if err != nil && ctx.Err() != nil {
			err = ctx.Err() // timeout or cancellation, as net/http reports them
		}
	}()
	if _, err := rc.c.Write(req); err != nil {
		return false, false, err
	}
	status, keep, answered, err := readAnswer(rc.r)
	if err != nil {
		return false, answered, err
	}
	if status.code != 200 {
		return keep, true, &StatusError{Kind: "http_" + strconv.Itoa(status.code), Msg: strings.TrimSpace(string(status.msg))}
	}
	return keep, true, nil
}

type answerStatus struct {
	code int
	msg  []byte // the start of a non-200 answer's body
}

var errMalformed = errors.New("malformed HTTP answer")

// readAnswer reads one HTTP/1.1 response, keeping the first 512 bytes of
// the body of a non-200 one.
func readAnswer(r *bufio.Reader) (st answerStatus, keep, answered bool, err error) {
	line, err := r.ReadSlice('\n')
	if len(line) > 0 {
		answered = true
	}
	if err != nil {
		return st, false, answered, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return st, false, true, errMalformed
	}
	if st.code, err = strconv.Atoi(string(line[9:12])); err != nil {
		return st, false, true, errMalformed
	}
	keep = line[7] == '1'
	length, chunked := int64(-1), false
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return st, false, true, err
		}
		if len(h) <= 2 { // "\r\n": end of the headers
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return st, false, true, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return st, false, true, errMalformed
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			switch v := bytes.ToLower(value); {
			case bytes.Contains(v, []byte("close")):
				keep = false
			case bytes.Contains(v, []byte("keep-alive")):
				keep = true
			}
		}
	}
	body := &bodyReader{r: r, keepMsg: st.code != 200}
	switch {
	case st.code == 204 || st.code == 304 || st.code/100 == 1:
	case chunked:
		err = body.chunked()
	case length >= 0:
		err = body.discard(length)
	default:
		keep = false // the answer ends with the connection
		err = body.discard(1 << 62)
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	st.msg = body.msg
	return st, keep, true, err
}

// bodyReader discards an answer's body, keeping its start when asked.
type bodyReader struct {
	r       *bufio.Reader
	keepMsg bool
	msg     []byte
}

func (b *bodyReader) discard(n int64) error {
	for n > 0 {
		chunk := int(min(n, int64(b.r.Size())))
		p, err := b.r.Peek(chunk)
		if b.keepMsg && len(b.msg) < 512 {
			b.msg = append(b.msg, p[:min(len(p), 512-len(b.msg))]...)
		}
		d, _ := b.r.Discard(len(p))
		n -= int64(d)
		if err != nil {
			return err
		}
	}
	return nil
}

// chunked reads a chunked body (RFC 9112 §7.1), trailers included.
func (b *bodyReader) chunked() error {
	for {
		line, err := b.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return errMalformed
		}
		if n == 0 {
			for { // trailers, then the empty line
				t, err := b.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(t) <= 2 {
					return nil
				}
			}
		}
		if err := b.discard(n); err != nil {
			return err
		}
		if crlf, err := b.r.ReadSlice('\n'); err != nil || len(bytes.TrimSpace(crlf)) != 0 {
			return errMalformed
		}
	}
}

// Close closes the idle connections.
func (c *rawHTTP) Close() error {
	for {
		select {
		case rc := <-c.idle:
			_ = rc.c.Close()
		default:
			return nil
		}
	}
}
