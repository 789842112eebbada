package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// net/http answers a few malformed requests itself, before any handler
// runs, in plain text (server.go@go1.26 (*conn).serve): 431 when the
// request line and headers pass MaxHeaderBytes, 400 for a malformed
// request line or header (with a reason for some: "missing required Host
// header", ...), 501 for an unknown Transfer-Encoding, 505 for an unknown
// protocol version. No handler hook exists for them, so the HTTP
// listeners' connections rewrite those exact answers into the server's
// JSON error shape on their way out. The match is on the whole of one
// Write, which is how net/http writes them (one fmt.Fprintf to the raw
// connection): the status line, then exactly goErrorHeaders, then a body
// that repeats the status (or, for 501, "Unsupported transfer
// encoding"). A response a handler writes never has that form: net/http
// writes a handler's headers sorted (Connection before Content-Type) and
// adds Date.
const goErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrorListener wraps an HTTP listener's connections (see above).
type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

type jsonErrorConn struct{ net.Conn }

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	if out, ok := jsonGoError(p); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps the half-close net/http does after a 431 (so the
// client reads the answer before the connection resets).
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// jsonGoError returns the JSON form of one of net/http's own plain-text
// answers, or false when p is not one.
func jsonGoError(p []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if len(p) < len(proto)+4 || (p[len(proto)] != '4' && p[len(proto)] != '5') || !bytes.HasPrefix(p, []byte(proto)) {
		return nil, false
	}
	eol := bytes.IndexByte(p, '\r')
	if eol < 0 || !bytes.HasPrefix(p[eol:], []byte(goErrorHeaders)) {
		return nil, false
	}
	status, body := p[len(proto):eol], p[eol+len(goErrorHeaders):]
	code, err := strconv.Atoi(string(status[:3]))
	if err != nil || len(status) < 4 || status[3] != ' ' {
		return nil, false
	}
	if !bytes.Equal(body, status) && !(code == http.StatusNotImplemented && string(body) == "Unsupported transfer encoding") {
		return nil, false
	}
	msg, ok := goErrorMessages[code]
	if !ok {
		msg = "the request is malformed"
	}
	// A reason after the status text ("400 Bad Request: missing required
	// Host header") is one of net/http's constants, never request data.
	if reason, found := bytes.CutPrefix(status[4:], []byte(http.StatusText(code)+": ")); found {
		msg += ": " + string(reason)
	}
	b, _ := json.Marshal(map[string]string{"error": msg + goErrorHints[code]})
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(b), b), true
}

var goErrorMessages = map[int]string{
	http.StatusRequestHeaderFieldsTooLarge: "the request line and headers are larger than the server accepts (1 MiB)",
	http.StatusBadRequest:                  "malformed HTTP request",
	http.StatusNotImplemented:              "unsupported Transfer-Encoding",
	http.StatusHTTPVersionNotSupported:     "unsupported HTTP version",
}

var goErrorHints = map[int]string{
	http.StatusRequestHeaderFieldsTooLarge: "; send less in headers (the texts belong in the body)",
	http.StatusBadRequest:                  "; check the request line (METHOD /path HTTP/1.1) and the headers",
	http.StatusNotImplemented:              "; send the body with Content-Length or Transfer-Encoding: chunked",
	http.StatusHTTPVersionNotSupported:     "; use HTTP/1.1",
}
