package serve

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// laneHead is one request's line and headers as the lane reads them:
// slices of the connection's read buffer, valid until the body is read.
type laneHead struct {
	method, target []byte
	host           []byte
	contentLength  int64 // -1: none sent
	close          bool  // Connection: close
	names, values  [][]byte
	size           int // bytes of the head, its blank line included
}

// laneMaxHeaders bounds the headers of a request the lane takes; more go
// to net/http, whose limit is in bytes (MaxHeaderBytes).
const laneMaxHeaders = 32

// parseLaneHead parses a complete head (ending in its blank line) into h.
// It reports false for anything but the plain form the lane serves: GET or
// POST, HTTP/1.1, a path of unreserved characters without a query or
// escapes, visible-ASCII header values, one Host, at most one
// Content-Length in digits, and none of the headers that change how the
// body or the connection is read (Transfer-Encoding, Expect, Upgrade, a
// Connection other than keep-alive or close), and a Host net/http takes
// (httpguts.ValidHostHeader, as net/http's server checks it). Such
// requests, malformed ones included, are net/http's to serve or refuse as
// ever.
func parseLaneHead(b []byte, h *laneHead) bool {
	*h = laneHead{contentLength: -1, names: h.names[:0], values: h.values[:0], size: len(b)}
	eol := bytes.IndexByte(b, '\n')
	if eol < 1 || b[eol-1] != '\r' {
		return false
	}
	line := b[:eol-1]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return false
	}
	h.method, line = line[:sp], line[sp+1:]
	if string(h.method) != http.MethodPost && string(h.method) != http.MethodGet {
		return false
	}
	sp = bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return false
	}
	h.target = line[:sp]
	if len(h.target) == 0 || h.target[0] != '/' || !plainPath(h.target) {
		return false
	}
	b = b[eol+1:]
	hosts := 0
	for {
		eol = bytes.IndexByte(b, '\n')
		if eol < 1 || b[eol-1] != '\r' {
			return false
		}
		if eol == 1 { // the blank line, which ends the head it is given
			return hosts == 1 && len(b) == 2
		}
		line, b = b[:eol-1], b[eol+1:]
		colon := bytes.IndexByte(line, ':')
		if colon < 1 || !tokenBytes(line[:colon]) || len(h.names) == laneMaxHeaders {
			return false
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		if !visibleBytes(value) {
			return false
		}
		switch {
		case asciiEqualFold(name, "Host"):
			if !httpguts.ValidHostHeader(string(value)) {
				return false // net/http answers it 400
			}
			hosts++
			h.host = value
		case asciiEqualFold(name, "Content-Length"):
			n, ok := contentLength(value)
			if !ok || h.contentLength >= 0 {
				return false
			}
			h.contentLength = n
		case asciiEqualFold(name, "Connection"):
			switch {
			case asciiEqualFold(value, "close"):
				h.close = true
			case !asciiEqualFold(value, "keep-alive"):
				return false
			}
		case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"),
			asciiEqualFold(name, "Upgrade"), asciiEqualFold(name, "Te"), asciiEqualFold(name, "Trailer"):
			return false
		}
		h.names, h.values = append(h.names, name), append(h.values, value)
	}
}

// plainPath reports whether p holds only unreserved characters and '/':
// the paths of the API, which need no unescaping or query parsing.
func plainPath[T string | []byte](p T) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/' || c == '-' || c == '_' || c == '.' || c == '~':
		default:
			return false
		}
	}
	return true
}

// tokenBytes reports whether b is an RFC 9110 token (a header name), by
// net/http's own rule (httpguts.IsTokenRune).
func tokenBytes(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// visibleBytes reports whether b is visible ASCII, spaces and tabs.
func visibleBytes(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		t := s[i]
		if 'A' <= t && t <= 'Z' {
			t += 'a' - 'A'
		}
		if c != t {
			return false
		}
	}
	return true
}

// contentLength parses a Content-Length of at most 18 digits.
func contentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// headerKey is the canonical form of a header name; the names clients
// send on every request come without an allocation.
func headerKey(b []byte) string {
	switch string(b) {
	case "Content-Type":
		return "Content-Type"
	case "Content-Length":
		return "Content-Length"
	case "User-Agent":
		return "User-Agent"
	case "Accept":
		return "Accept"
	case "Accept-Encoding":
		return "Accept-Encoding"
	case "Connection":
		return "Connection"
	case "Authorization":
		return "Authorization"
	case "Host":
		return "Host"
	}
	return http.CanonicalHeaderKey(string(b))
}

// headerValue is string(b), without an allocation for the values clients
// send on every request.
func headerValue(b []byte) string {
	switch string(b) {
	case "application/json":
		return "application/json"
	case "gzip":
		return "gzip"
	case "keep-alive":
		return "keep-alive"
	case "*/*":
		return "*/*"
	case "Go-http-client/1.1":
		return "Go-http-client/1.1"
	}
	return string(b)
}

// laneBody is a request body of known length read from the connection's
// buffer.
type laneBody struct {
	r    io.Reader
	left int64
}

func (b *laneBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && b.left == 0 {
		err = io.EOF
	}
	return n, err
}

func (b *laneBody) Close() error { return nil }

// laneHeadRoom is the space kept before an answer's body for its status
// line and headers, so that both leave in one write without a copy.
const laneHeadRoom = 512

// laneWriter is the lane's http.ResponseWriter: the answer collects in
// memory and leaves in one write with its Content-Length when the handler
// returns, which is what net/http does for an answer that fits its buffer
// (server.go@go1.26 (*response).finishRequest). Unlike net/http's, headers
// changed after WriteHeader still go out; the server's handlers set them
// before.
type laneWriter struct {
	h      http.Header
	status int
	buf    *[]byte // laneHeadRoom bytes, then the body
}

func (w *laneWriter) Header() http.Header { return w.h }

func (w *laneWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 || code > 999 {
		return // a second call, or 1xx, which the server never sends
	}
	w.status = code
}

func (w *laneWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	*w.buf = append(*w.buf, p...)
	return len(p), nil
}

func bodyAllowed(code int) bool {
	return code != http.StatusNoContent && code != http.StatusNotModified
}

// answer returns the whole response: status line, the handler's headers
// (names and values as net/http would send them), Date, Content-Type when
// the handler set none (sniffed, as net/http does), Content-Length, and
// Connection: close when closing.
func (w *laneWriter) answer(closing bool) []byte {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	body := (*w.buf)[laneHeadRoom:]
	var hb [laneHeadRoom]byte
	head := append(hb[:0], "HTTP/1.1 "...)
	head = strconv.AppendInt(head, int64(w.status), 10)
	head = append(head, ' ')
	if text := http.StatusText(w.status); text != "" {
		head = append(head, text...)
	} else { // as net/http writes a code it has no text for (writeStatusLine, server.go@go1.26)
		head = append(head, "status code "...)
		head = strconv.AppendInt(head, int64(w.status), 10)
	}
	head = append(head, "\r\n"...)
	for k, vs := range w.h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Date", "Trailer":
			continue // the lane's to write
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			head = append(head, k...)
			head = append(head, ": "...)
			head = appendHeaderValue(head, v)
			head = append(head, "\r\n"...)
		}
	}
	if _, ok := w.h["Content-Type"]; !ok && len(body) > 0 && bodyAllowed(w.status) {
		head = append(head, "Content-Type: "...)
		head = append(head, http.DetectContentType(body)...)
		head = append(head, "\r\n"...)
	}
	head = append(head, "Date: "...)
	head = append(head, httpDate()...)
	if bodyAllowed(w.status) {
		head = append(head, "\r\nContent-Length: "...)
		head = strconv.AppendInt(head, int64(len(body)), 10)
	}
	if closing {
		head = append(head, "\r\nConnection: close"...)
	}
	head = append(head, "\r\n\r\n"...)
	if len(head) > laneHeadRoom {
		return append(head, body...)
	}
	start := laneHeadRoom - len(head)
	copy((*w.buf)[start:], head)
	return (*w.buf)[start:]
}

// appendHeaderValue appends v with CR and LF as spaces, as net/http sends
// them (headerNewlineToSpace, server.go@go1.26).
func appendHeaderValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// lastDate caches the Date header's text for the current second.
var lastDate struct {
	mu   sync.Mutex
	unix atomic.Int64
	text atomic.Pointer[string]
}

// httpDate is the Date header's value for now, formatted once a second.
func httpDate() string {
	now := time.Now()
	if sec := now.Unix(); lastDate.unix.Load() != sec || lastDate.text.Load() == nil {
		lastDate.mu.Lock()
		t := now.UTC().Format(http.TimeFormat)
		lastDate.text.Store(&t)
		lastDate.unix.Store(sec)
		lastDate.mu.Unlock()
	}
	return *lastDate.text.Load()
}
