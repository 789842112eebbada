package serve

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// TestConnectionFlood: 100 connections that send only the HTTP/2 preface and
// SETTINGS (the audit's flood, scaled down) against a gRPC cap of 40: the 60
// past the cap are closed at once, the 40 within it when the idle timeout
// passes (before: held for more than 150 s, until descriptors ran out), and
// meanwhile /v2/health/live answers and a real gRPC client is served.
func TestConnectionFlood(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{MaxConnections: 40, IdleTimeout: time.Second})
	const flood = 100
	conns := make([]net.Conn, 0, flood)
	for range flood {
		c, err := net.Dial("tcp", ts.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Client preface, then an empty SETTINGS frame (RFC 9113 §3.4).
		if _, err := c.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// closedBy reports, per connection, when the server closed it.
	var mu sync.Mutex
	closedAt := make([]time.Duration, flood)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					mu.Lock()
					closedAt[i] = time.Since(start)
					mu.Unlock()
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	early := 0
	for _, d := range closedAt {
		if d > 0 {
			early++
		}
	}
	mu.Unlock()
	if early < flood-40 {
		t.Errorf("%d connections closed at once, want at least %d past the cap", early, flood-40)
	}
	if open := ts.grpcLn.(*cappedListener).open.Load(); open > 40 {
		t.Errorf("%d gRPC connections open, cap 40", open)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(ts.url + "/v2/health/live")
	if err != nil {
		t.Fatalf("health under the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health under the flood: %d", resp.StatusCode)
	}
	wg.Wait()
	var longest time.Duration
	for i, d := range closedAt {
		longest = max(longest, d)
		if d > 10*time.Second {
			t.Errorf("connection %d held %s", i, d)
		}
	}
	t.Logf("%d of %d closed at once (cap 40), the last after %s (idle timeout 1 s)", early, flood, longest.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := dialGRPC(t, ts.GRPCAddr()).ServerLive(ctx, &tritonpb.ServerLiveRequest{}); err != nil {
		t.Errorf("gRPC after the flood: %v", err)
	}
}
