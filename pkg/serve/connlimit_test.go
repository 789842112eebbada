package serve

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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

// TestFloodEvictsIdleConnections: a flood of idle connections on the HTTP
// port itself (some silent, some trickling a request's headers) and on the
// gRPC port (HTTP/2 preface only) fills each cap; a health check then gets
// its answer at once, because the least recently active idle connection is
// closed to make room (before: the newcomer was closed, and health on a
// flooded HTTP port failed until the 10 s header timeout freed a slot).
// Connections with a request running (a body being read, an open gRPC
// stream) are never the ones closed.
func TestFloodEvictsIdleConnections(t *testing.T) {
	const limit = 12
	ts := startRepoServer(t, 8, 1000, Config{MaxConnections: limit})
	hl, gl := ts.httpLn.(*cappedListener), ts.grpcLn.(*cappedListener)

	// HTTP: one connection whose request body is being read, then idle ones.
	busy, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	fmt.Fprintf(busy, "POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"inputs\"")
	// gRPC: one connection with an open stream (an RPC running).
	gconn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer gconn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := tritonpb.NewGRPCInferenceServiceClient(gconn).ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the busy connections", func() bool { return hl.open.Load() >= 1 && gl.open.Load() >= 1 })
	for i := range 2 * limit {
		c, err := net.Dial("tcp", ts.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 1 {
			fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n") // headers never finished
		}
		g, err := net.Dial("tcp", ts.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if _, err := g.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the flood to fill both caps", func() bool {
		return hl.open.Load() == limit && gl.open.Load() == limit && hl.refused.Load() > 0 && gl.refused.Load() > 0
	})
	time.Sleep(evictIdleAfter + 100*time.Millisecond)

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 3 {
		t0 := time.Now()
		resp, err := client.Get(ts.url + "/v2/health/live")
		if err != nil {
			t.Fatalf("health %d on the flooded HTTP port: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("health %d on the flooded HTTP port: %d", i, resp.StatusCode)
		}
		t.Logf("health %d on the flooded HTTP port: 200 in %s", i, time.Since(t0).Round(time.Microsecond))
	}
	if open := hl.open.Load(); open > limit {
		t.Errorf("%d HTTP connections open, cap %d", open, limit)
	}
	if hl.evicted.Load() == 0 {
		t.Error("no idle HTTP connection was evicted")
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if _, err := dialGRPC(t, ts.GRPCAddr()).ServerLive(sctx, &tritonpb.ServerLiveRequest{}); err != nil {
		t.Errorf("gRPC ServerLive on the flooded gRPC port: %v", err)
	}
	if gl.evicted.Load() == 0 {
		t.Error("no idle gRPC connection was evicted")
	}

	// The busy connections survived: the body's rest gets its answer, and
	// the stream still serves.
	fmt.Fprintf(busy, ":[]}        ")
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(busy).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("the connection whose body was being read: %q, %v (want its 400)", line, err)
	}
	if err := stream.Send(&tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte("小")}}}}}); err != nil {
		t.Fatalf("the open stream: %v", err)
	}
	if r, err := stream.Recv(); err != nil || r.GetErrorMessage() != "" {
		t.Errorf("the open stream: %v %v", r, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
