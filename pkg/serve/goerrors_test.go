package serve

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestGoErrorsAnswerJSON: the answers net/http writes itself, before any
// handler runs, reach the client as the server's JSON errors with their
// status (before: text/plain "431 Request Header Fields Too Large" and
// "400 Bad Request"), and handlers' own answers pass untouched.
func TestGoErrorsAnswerJSON(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{})
	for _, c := range []struct {
		name, request string
		code          int
		msg           string
	}{
		{"2 MB header", "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", 431, "larger than the server accepts (1 MiB); send less in headers"},
		{"malformed request line", "GARBAGE\r\n\r\n", 400, "malformed HTTP request; check the request line"},
		{"no Host header", "GET /v2/health/live HTTP/1.1\r\n\r\n", 400, "malformed HTTP request: missing required Host header"},
		{"invalid header", "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "malformed HTTP request"},
		{"unknown transfer coding", "POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: rot13\r\n\r\n", 501, "unsupported Transfer-Encoding; send the body with Content-Length"},
		{"unknown HTTP version", "GET /v2/health/live HTTP/3.7\r\nHost: x\r\n\r\n", 505, "unsupported HTTP version"},
		{"a handler's own answer", "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, ""},
		{"a handler's JSON error", "GET /v2/models/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ts.HTTPAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			go func() { _, _ = io.WriteString(conn, c.request) }()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, c.code, body)
			}
			if c.code == 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, body %q", ct, body)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, c.msg) {
				t.Errorf("body %s, want an error containing %q", body, c.msg)
			}
		})
	}
}

func TestJSONGoErrorMatchesOnlyNetHTTPsOwn(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     bool
	}{
		{"431", "HTTP/1.1 431 Request Header Fields Too Large" + goErrorHeaders + "431 Request Header Fields Too Large", true},
		{"400 with a reason", "HTTP/1.1 400 Bad Request: missing required Host header" + goErrorHeaders + "400 Bad Request: missing required Host header", true},
		{"501", "HTTP/1.1 501 Not Implemented" + goErrorHeaders + "Unsupported transfer encoding", true},
		{"a body that differs", "HTTP/1.1 400 Bad Request" + goErrorHeaders + "400 Bad Request and more", false},
		{"a handler's text/plain answer", "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nDate: x\r\n\r\n400 Bad Request", false},
		{"a 200", "HTTP/1.1 200 OK" + goErrorHeaders + "200 OK", false},
		{"body bytes", `{"error":"x"}`, false},
		{"short", "HTTP/1.1 4", false},
	} {
		if _, got := jsonGoError([]byte(c.in)); got != c.want {
			t.Errorf("%s: rewritten %v, want %v", c.name, got, c.want)
		}
	}
}
