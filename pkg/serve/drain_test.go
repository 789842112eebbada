package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// stopServe cancels Serve and returns what it returned (and hands the
// cleanup a nil so that it does not report the same error again).
func stopServe(t *testing.T, ts *testServer, within time.Duration) error {
	t.Helper()
	ts.cancel()
	select {
	case err := <-ts.done:
		ts.done <- nil
		return err
	case <-time.After(within):
		t.Fatalf("Serve did not return within %s", within)
		return nil
	}
}

// waitPending waits until n requests are counted in flight by the server.
func waitPending(t *testing.T, ts *testServer, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ts.drain.inflight.Load() >= n {
			return
		}
	}
	t.Fatalf("only %d of %d requests in flight", ts.drain.inflight.Load(), n)
}

// waitQueued waits until n requests are admitted to the models' queues
// (nv_inference_pending_request_count), past decoding and tokenising.
func waitQueued(t *testing.T, ts *testServer, n float64) {
	t.Helper()
	var pending float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		pending = 0
		mfs, _ := ts.registry.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "nv_inference_pending_request_count" {
				for _, m := range mf.GetMetric() {
					pending += m.GetGauge().GetValue()
				}
			}
		}
		if pending >= n {
			return
		}
	}
	t.Fatalf("only %v of %v requests queued", pending, n)
}

// TestDrainDeadlineAnswersEveryRequest: the requests wait in the queue far
// longer than --drain-timeout. When the deadline passes, every one of them,
// HTTP, gRPC and a client stuck sending its body, is answered 503 /
// UNAVAILABLE with a message (none sees its connection close first), and
// Serve reports the cut-short drain, which the command turns into exit 1.
func TestDrainDeadlineAnswersEveryRequest(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 64, 20_000_000)) // 20 s queue delay
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root}, cfg: Config{DrainTimeout: 300 * time.Millisecond}})
	gc := dialGRPC(t, ts.GRPCAddr())
	const httpClients, grpcClients = 12, 6
	var got503, gotUnavailable, other atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		parallel(httpClients+grpcClients+1, func(i int) {
			switch {
			case i < httpClients:
				code, h, b := ts.do(t, "POST", "/v2/models/m3e/infer", []byte(inferBody("排队")), nil)
				if code == http.StatusServiceUnavailable && h.Get("Retry-After") != "" && strings.Contains(errorBody(t, b), "shut down") {
					got503.Add(1)
					return
				}
				t.Errorf("HTTP request: %d %v %s", code, h, b)
				other.Add(1)
			case i < httpClients+grpcClients:
				_, err := gc.ModelInfer(context.Background(), &tritonpb.ModelInferRequest{
					ModelName: "m3e",
					Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1},
						Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte("排队")}}}},
				})
				if st, _ := status.FromError(err); st.Code() == codes.Unavailable && strings.Contains(st.Message(), "shut down") {
					gotUnavailable.Add(1)
					return
				}
				t.Errorf("gRPC request: %v", err)
				other.Add(1)
			default:
				// A body that never finishes: its client must not hold shutdown.
				c, err := net.Dial("tcp", ts.HTTPAddr())
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				fmt.Fprintf(c, "POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\":")
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				buf := make([]byte, 4096)
				n, _ := c.Read(buf)
				if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 503") {
					t.Errorf("slow-body client got %q", buf[:n])
				}
			}
		})
	}()
	waitPending(t, ts, httpClients+grpcClients+1)
	start := time.Now()
	err := stopServe(t, ts, 15*time.Second)
	<-done
	if !errors.Is(err, ErrDrainCutShort) {
		t.Fatalf("Serve returned %v, want ErrDrainCutShort", err)
	}
	if took := time.Since(start); took > 300*time.Millisecond+drainGrace+2*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	if got503.Load() != httpClients || gotUnavailable.Load() != grpcClients {
		t.Errorf("%d/%d HTTP 503, %d/%d gRPC UNAVAILABLE, %d other", got503.Load(), httpClients, gotUnavailable.Load(), grpcClients, other.Load())
	}
	t.Logf("Serve: %v", err)
}

// TestShutdownDelayKeepsServingWhileNotReady: on the signal, readiness is
// 503 at once (on a new connection: the listener stays open), liveness 200,
// and inference still succeeds for ShutdownDelay; after it new requests get
// 503 + Retry-After while the accepted ones finish and Serve returns nil.
func TestShutdownDelayKeepsServingWhileNotReady(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 64, 2_000_000)) // 2 s queue delay
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root}, cfg: Config{ShutdownDelay: 300 * time.Millisecond, DrainTimeout: 20 * time.Second}})
	codes := make(chan int, 2)
	send := func(text string) {
		code, b := ts.post(t, "/v2/models/m3e/infer", inferBody(text))
		if code != http.StatusOK {
			t.Errorf("request %s: %d %s", text, code, b)
		}
		codes <- code
	}
	go send("在途")
	waitQueued(t, ts, 1)
	start := time.Now()
	serveErr := make(chan error, 1)
	ts.cancel()
	go func() { serveErr <- <-ts.done; ts.done <- nil }()
	time.Sleep(50 * time.Millisecond)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) int {
		resp, err := client.Get(ts.url + path)
		if err != nil {
			t.Fatalf("GET %s during shutdown: %v (want an answer, not a refused connection)", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/v2/health/ready"); c != http.StatusServiceUnavailable {
		t.Errorf("ready during shutdown: %d, want 503", c)
	}
	if c := get("/v2/health/live"); c != http.StatusOK {
		t.Errorf("live during shutdown: %d, want 200", c)
	}
	// Within the delay a new request is still accepted (it runs with the first).
	go send("延迟期间")
	waitQueued(t, ts, 2)
	time.Sleep(time.Until(start.Add(400 * time.Millisecond)))
	code, h, b := ts.do(t, "POST", "/v2/models/m3e/infer", []byte(inferBody("之后")), nil)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("request after the delay: %d %v %s, want 503 with Retry-After", code, h, b)
	}
	<-codes
	<-codes
	select {
	case err := <-serveErr:
		if err != nil {
			t.Errorf("Serve: %v, want nil after a complete drain", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
}
