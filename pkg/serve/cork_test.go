package serve

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
)

// writeCountListener counts the write calls that reach its connections.
type writeCountListener struct {
	net.Listener
	writes *atomic.Int32
}

func (l writeCountListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writeCountConn{Conn: c, writes: l.writes}, nil
}

type writeCountConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c *writeCountConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestWriteBodyOneWrite: through a corked connection a 10 KB answer
// (larger than net/http's 4 KiB connection buffer) reaches the socket in
// one write, smaller ones too, and all arrive whole on a kept-alive
// connection.
func TestWriteBodyOneWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int32
	big := bytes.Repeat([]byte("0123456789"), 1000)
	srv := &http.Server{
		ConnContext: httpConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := big
			switch r.URL.Path {
			case "/small":
				b = big[:100]
			case "/mid": // under corkMin: net/http writes it once by itself
				b = big[:3000]
			}
			w.Header()["Content-Type"] = contentTypeJSON
			w.Header()["Content-Length"] = []string{strconv.Itoa(len(b))}
			writeBody(w, r, b)
		}),
	}
	go srv.Serve(corkListener{Listener: writeCountListener{ln, &writes}, open: &openConns{}})
	defer srv.Close()
	c := &http.Client{}
	for _, tc := range []struct {
		path string
		want []byte
	}{{"/big", big}, {"/small", big[:100]}, {"/mid", big[:3000]}, {"/big", big}} {
		before := writes.Load()
		resp, err := c.Get("http://" + ln.Addr().String() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, tc.want) || resp.ContentLength != int64(len(tc.want)) {
			t.Fatalf("%s: %d bytes (Content-Length %d), err %v", tc.path, len(got), resp.ContentLength, err)
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("%s: %d writes, want 1", tc.path, n)
		}
	}
}

// TestEmbeddingAnswersCarryContentLength: OpenAI's and TEI's embedding
// answers leave with their Content-Length, not chunked, as KServe's do
// (one write instead of two for a body larger than net/http's buffer).
func TestEmbeddingAnswersCarryContentLength(t *testing.T) {
	ts := startRepoServer(t, 4, 1000, Config{})
	for _, tc := range []struct{ path, body string }{
		{"/v1/embeddings", `{"model":"m3e","input":["酒店很好","房间很小但是很干净","今天天气不错"]}`},
		{"/v1/embeddings", `{"model":"m3e","input":"酒店很好","encoding_format":"base64"}`},
		{"/embed", `{"inputs":["酒店很好","房间很小但是很干净"]}`},
		{"/embed_all", `{"inputs":["酒店很好"]}`},
	} {
		code, h, b := ts.do(t, http.MethodPost, tc.path, []byte(tc.body), map[string]string{"Content-Type": "application/json"})
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.path, code, b)
		}
		if got := h.Get("Content-Length"); got != strconv.Itoa(len(b)) {
			t.Errorf("%s: Content-Length %q for a %d-byte body (Transfer-Encoding %q)", tc.path, got, len(b), h.Get("Transfer-Encoding"))
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", tc.path, ct)
		}
	}
}
