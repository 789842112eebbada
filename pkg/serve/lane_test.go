package serve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// laneCase is one raw request sent to a server with the lane and to one
// without it.
type laneCase struct {
	name, raw string
	lane      bool // the lane serves it (else net/http, after a hand-off)
}

func rawPost(path, body string, extra ...string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s",
		path, strings.Join(extra, ""), len(body), body)
}

func laneCases() []laneCase {
	infer := inferBody("你好，世界", "m3e")
	chunked := fmt.Sprintf("POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(infer), infer)
	return []laneCase{
		{"infer", rawPost("/v2/models/m3e/infer", infer), true},
		{"infer version", rawPost("/v2/models/m3e/versions/1/infer", infer), true},
		{"infer bad json", rawPost("/v2/models/m3e/infer", `{"inputs":[`), true},
		{"infer unknown model", rawPost("/v2/models/nope/infer", infer), true},
		{"infer unknown version", rawPost("/v2/models/m3e/versions/9/infer", infer), true},
		{"infer unknown model version", rawPost("/v2/models/nope/versions/1/infer", infer), true},
		{"infer model named versions", rawPost("/v2/models/versions/versions/1/infer", infer), true},
		{"infer dots model", rawPost("/v2/models/.../infer", infer), true},
		{"infer dot model", rawPost("/v2/models/./infer", infer), true},
		{"infer dot-dot version", rawPost("/v2/models/m3e/versions/../infer", infer), true},
		{"infer empty model", rawPost("/v2/models//infer", infer), true},
		{"infer empty version", rawPost("/v2/models/m3e/versions//infer", infer), true},
		{"infer trailing slash", rawPost("/v2/models/m3e/infer/", infer), true},
		{"infer extra segment", rawPost("/v2/models/m3e/x/infer", infer), true},
		{"infer by GET", "GET /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"infer with key", rawPost("/v2/models/m3e/infer", infer, "Authorization: Bearer k\r\n"), true},
		{"infer version with key", rawPost("/v2/models/m3e/versions/1/infer", infer, "Authorization: Bearer k\r\n"), true},
		{"infer wrong key", rawPost("/v2/models/m3e/infer", infer, "Authorization: Bearer nope\r\n"), true},
		{"infer no body", "POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"infer gzip body", rawPost("/v2/models/m3e/infer", "not gzip", "Content-Encoding: gzip\r\n"), true},
		{"infer too large", rawPost("/v2/models/m3e/infer", strings.Repeat(" ", 2048)), true},
		{"openai", rawPost("/v1/embeddings", `{"model":"m3e","input":["你好"]}`), true},
		{"openai keep-alive header", rawPost("/v1/embeddings", `{"model":"m3e","input":"a"}`, "Connection: keep-alive\r\n"), true},
		{"health", "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"metadata", "GET /v2/models/m3e HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", true},
		{"unknown path", "GET /v3/nothing HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"not canonical", "GET /v2/models/../health/ready HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"chunked body", chunked, false},
		{"escaped path", "GET /v2/models/m%33e HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"query", "GET /v2/health/ready?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"head", "HEAD /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"delete", "DELETE /v2/models/m3e HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"http/1.0", "GET /v2/health/ready HTTP/1.0\r\n\r\n", false},
		{"no host", "GET /v2/health/ready HTTP/1.1\r\n\r\n", false},
		{"two content lengths", "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", false},
		{"expect", rawPost("/v1/embeddings", `{"model":"m3e","input":"a"}`, "Expect: 100-continue\r\n"), false},
		{"bad header", "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", false},
		{"bad host", "GET /v2/health/ready HTTP/1.1\r\nHost: a b\r\n\r\n", false},
		{"non-ascii header", "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nUser-Agent: 客户端\r\n\r\n", false},
	}
}

// roundTrip sends raw on a new connection and reads one answer.
func roundTrip(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

// TestLaneAnswersAsNetHTTP sends each request to a server with the lane and
// to one that leaves everything to net/http, without and with an API key
// (the lane's infer route runs under authenticate): status, headers (Date
// aside) and body must be the same, and the lane must have served exactly
// the plain requests.
func TestLaneAnswersAsNetHTTP(t *testing.T) {
	for _, key := range []string{"", "k"} {
		t.Run("key="+key, func(t *testing.T) { laneAnswersAsNetHTTP(t, Config{APIKey: key, MaxRequestBytes: 1024}) })
	}
}

func laneAnswersAsNetHTTP(t *testing.T, cfg Config) {
	withLane := startRepoServer(t, 8, 1000, cfg)
	cfg.NetHTTPOnly = true
	without := startRepoServer(t, 8, 1000, cfg)
	if withLane.lane == nil || without.lane != nil {
		t.Fatalf("lane: %v with, %v without; want one only with", withLane.lane, without.lane)
	}
	for _, tc := range laneCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := withLane.lane.served.Load()
			got, gotBody := roundTrip(t, withLane.HTTPAddr(), tc.raw)
			if served := withLane.lane.served.Load() - before; served != map[bool]int64{true: 1, false: 0}[tc.lane] {
				t.Errorf("lane served %d requests, want lane=%v", served, tc.lane)
			}
			want, wantBody := roundTrip(t, without.HTTPAddr(), tc.raw)
			if got.StatusCode != want.StatusCode {
				t.Fatalf("status %d, net/http %d (body %s)", got.StatusCode, want.StatusCode, gotBody)
			}
			if !bytes.Equal(gotBody, wantBody) {
				t.Errorf("body\n%s\nnet/http\n%s", gotBody, wantBody)
			}
			got.Header.Del("Date")
			want.Header.Del("Date")
			if g, w := fmt.Sprint(got.Header), fmt.Sprint(want.Header); g != w {
				t.Errorf("headers\n%s\nnet/http\n%s", g, w)
			}
			if got.Close != want.Close {
				t.Errorf("connection close %v, net/http %v", got.Close, want.Close)
			}
		})
	}
}

// TestLaneKeepAlivePipelineAndHandOff sends, on one connection and in one
// write, two plain requests, one the lane hands to net/http and one more
// plain one: four answers in order, the lane serving the first two.
func TestLaneKeepAlivePipelineAndHandOff(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{})
	infer := inferBody("流水线")
	reqs := []string{
		rawPost("/v2/models/m3e/infer", infer),
		"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n",
		fmt.Sprintf("POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(infer), infer),
		rawPost("/v2/models/m3e/infer", infer),
	}
	c, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var first []byte
	for i := range reqs {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answer %d: status %d: %s", i, resp.StatusCode, b)
		}
		switch i {
		case 0:
			first = b
		case 2, 3:
			if !bytes.Equal(b, first) {
				t.Errorf("answer %d differs from the first:\n%s\n%s", i, b, first)
			}
		}
	}
	if n := ts.lane.served.Load(); n < 2 {
		t.Errorf("lane served %d requests, want the first two", n)
	}
}

// TestLaneUnreadBodyClosesConnection: a body over MaxRequestBytes is
// answered 413 unread, and the connection closes after the answer, as
// net/http does for a large unread body.
func TestLaneUnreadBodyClosesConnection(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{MaxRequestBytes: 1 << 10})
	big := inferBody(strings.Repeat("长", 200_000))
	c, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(c, rawPost("/v2/models/m3e/infer", big)) }()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("status %d, close %v; want 413 and Connection: close", resp.StatusCode, resp.Close)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("connection still open after the 413")
	}
}

// TestLaneIdleConnectionDoesNotHoldShutdown: a keep-alive connection idle
// after its answer is closed by shutdown, which returns.
func TestLaneIdleConnectionDoesNotHoldShutdown(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{})
	c, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %v %v", resp, err)
	}
	_, _ = io.ReadAll(resp.Body)
	if err := stopServe(t, ts, 10*time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("idle connection still open after shutdown")
	}
}

// FuzzParseLaneHead checks the lane's head parser against net/http's: a
// head the lane takes must be one net/http reads the same way (method,
// path, Host, Content-Length, Connection: close); anything else is not
// the lane's.
func FuzzParseLaneHead(f *testing.F) {
	for _, tc := range laneCases() {
		if i := strings.Index(tc.raw, "\r\n\r\n"); i >= 0 {
			f.Add([]byte(tc.raw[:i+4]))
		}
	}
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 007\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nhost: h\r\nX-A:\t v \r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h laneHead
		if !parseLaneHead(b, &h) {
			return
		}
		if h.size != len(b) || !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
			t.Fatalf("size %d of %d bytes", h.size, len(b))
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("lane takes %q, net/http refuses it: %v", b, err)
		}
		if r.Method != string(h.method) || r.URL.Path != string(h.target) || r.URL.RawQuery != "" || r.Host != string(h.host) {
			t.Fatalf("%q: lane %s %s host %q, net/http %s %s host %q", b, h.method, h.target, h.host, r.Method, r.URL.Path, r.Host)
		}
		cl := h.contentLength
		if cl < 0 {
			cl = 0
		}
		if !httpguts.ValidHostHeader(r.Host) {
			t.Fatalf("%q: lane takes Host %q, which net/http's server refuses", b, r.Host)
		}
		if r.ContentLength != cl || r.Close != h.close {
			t.Fatalf("%q: lane length %d close %v, net/http %d %v", b, h.contentLength, h.close, r.ContentLength, r.Close)
		}
	})
}

// flakyListener fails Accept with errs in turn.
type flakyListener struct {
	net.Listener
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	err := l.errs[0]
	if len(l.errs) > 1 {
		l.errs = l.errs[1:]
	}
	return nil, err
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

// TestLaneRetriesTemporaryAcceptErrors: a temporary Accept failure (EMFILE)
// is retried, as http.Server.Serve does; a lasting one ends Accept with it.
func TestLaneRetriesTemporaryAcceptErrors(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	l := newLane(s, &flakyListener{Listener: inner, errs: []error{tempErr{}, tempErr{}, net.ErrClosed}})
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept: %v, want the lasting error after the temporary ones", err)
	}
}
