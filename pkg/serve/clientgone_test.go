package serve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// pendingRequests is nv_inference_pending_request_count summed over models.
func pendingRequests(ts *testServer) float64 {
	var pending float64
	mfs, _ := ts.registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "nv_inference_pending_request_count" {
			for _, m := range mf.GetMetric() {
				pending += m.GetGauge().GetValue()
			}
		}
	}
	return pending
}

// backgroundReads counts the goroutines in net/http's background read.
func backgroundReads() int {
	var st strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&st, 1)
	return strings.Count(st.String(), "net/http.(*connReader).backgroundRead")
}

// TestClientGoneCancelsQueuedRequest: a client that closes its connection
// while its request waits in the queue (20 s of queue delay here) has the
// request cancelled and taken out of the queue, whether it closes the
// whole connection or only its sending side, and whether or not its
// request had a body (clientgone.go).
func TestClientGoneCancelsQueuedRequest(t *testing.T) {
	ts := startRepoServer(t, 64, 20_000_000, Config{})
	body := inferBody("排队")
	for _, tc := range []struct {
		name      string
		halfClose bool
		extra     string // bytes sent after the request
	}{
		{name: "close"},
		{name: "half-close", halfClose: true},
		{name: "close after a pipelined byte", extra: "G"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ts.HTTPAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s%s", len(body), body, tc.extra)
			waitQueued(t, ts, 1)
			// The watcher covers the wait, not a background read of net/http's
			// (one of another request, just answered, may still end).
			for deadline := time.Now().Add(3 * time.Second); backgroundReads() > 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("a goroutine of net/http's blocks in a background read while the request waits")
				}
			}
			if tc.halfClose {
				_ = c.(*net.TCPConn).CloseWrite()
			} else {
				_ = c.Close()
			}
			deadline := time.Now().Add(5 * time.Second)
			for pendingRequests(ts) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the request of a client that went away is still queued after 5 s")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestPipelinedRequestsAnswered: requests sent back to back on one
// connection before any answer (HTTP/1.1 pipelining, which apt and some
// load generators use) are all answered in order: the next request's bytes
// the answered-at-once background read leaves in the socket are read by
// net/http as the next request.
func TestPipelinedRequestsAnswered(t *testing.T) {
	ts := startRepoServer(t, 8, 100, Config{})
	c, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reqs strings.Builder
	for _, text := range []string{"一", "二", "三"} {
		body := inferBody(text)
		fmt.Fprintf(&reqs, "POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	reqs.WriteString("GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := c.Write([]byte(reqs.String())); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i := 0; i < 4; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || (i < 3 && !strings.Contains(string(b), `"outputs"`)) {
			t.Fatalf("answer %d: %d %s", i, resp.StatusCode, b)
		}
	}
}
