package bench

import (
	"bufio"
	"strings"
	"testing"
)

// TestReadAnswer: the lean client's HTTP/1.1 framing: Content-Length,
// chunked (with extensions and trailers), close-delimited, keep-alive
// decisions, and the start of an error answer's body.
func TestReadAnswer(t *testing.T) {
	cases := []struct {
		name, in string
		code     int
		keep     bool
		msg      string
		rest     string // what must be left unread: the next answer
		bad      bool
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhelloNEXT", code: 200, keep: true, rest: "NEXT"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: 1\r\n\r\nNEXT", code: 200, keep: true, rest: "NEXT"},
		{name: "close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", code: 200},
		{name: "http/1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", code: 200},
		{name: "http/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", code: 200, keep: true},
		{name: "until EOF", in: "HTTP/1.1 200 OK\r\n\r\nall of it", code: 200},
		{name: "error body", in: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 17\r\n\r\n{\"error\":\"busy\"}\n", code: 503, keep: true, msg: "{\"error\":\"busy\"}\n"},
		{name: "no content", in: "HTTP/1.1 204 No Content\r\n\r\nNEXT", code: 204, keep: true, rest: "NEXT"},
		{name: "garbage", in: "SSH-2.0-OpenSSH\r\n\r\n", bad: true},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", bad: true},
		{name: "bad chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", bad: true},
		{name: "cut short", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", bad: true},
		{name: "long body", in: "HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + strings.Repeat("x", 300) + "NEXT", code: 200, keep: true, rest: "NEXT"},
		{name: "long error", in: "HTTP/1.1 400 Bad Request\r\nContent-Length: 600\r\n\r\n" + strings.Repeat("e", 600), code: 400, keep: true, msg: strings.Repeat("e", 512)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(c.in), 64)
			st, keep, answered, err := readAnswer(r)
			if c.bad {
				if err == nil {
					t.Fatalf("accepted: code %d", st.code)
				}
				return
			}
			if err != nil || !answered {
				t.Fatalf("err %v, answered %v", err, answered)
			}
			rest, _ := r.ReadString(0)
			if st.code != c.code || keep != c.keep || string(st.msg) != c.msg || rest != c.rest {
				t.Errorf("code %d keep %v msg %q rest %q", st.code, keep, st.msg, rest)
			}
		})
	}
}
