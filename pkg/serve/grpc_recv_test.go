package serve

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// countingConn counts the bytes a client wrote.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// TestGRPCMessageWaitsInOneWindow: a ModelInfer message whose stream waits
// for the receive gate costs the server one flow-control window, not the
// whole message (before: grpc-go read all of it, and BDP estimation grew
// the window to 16 MiB, before any server code ran). Once the gate opens,
// the same call succeeds.
func TestGRPCMessageWaitsInOneWindow(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{})
	var written atomic.Int64
	conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1<<30)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return countingConn{Conn: c, n: &written}, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := tritonpb.NewGRPCInferenceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.ServerLive(ctx, &tritonpb.ServerLiveRequest{}); err != nil {
		t.Fatal(err)
	}
	// Hold every slot of the gate, as receives in progress would, for as
	// long as the test needs.
	ts.gate.wait.Store(int64(time.Minute))
	for range cap(ts.gate.slots) {
		ts.gate.slots <- struct{}{}
	}
	texts := make([][]byte, 8)
	for i := range texts {
		texts[i] = bytes.Repeat([]byte("长"), 1<<20/3)
	}
	req := &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{8, 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: texts}}}}
	before := written.Load()
	done := make(chan error, 1)
	go func() { _, err := c.ModelInfer(ctx, req); done <- err }()
	// Wait until the client has written all the window lets it (the count
	// stops moving).
	for last := int64(-1); written.Load() != last; time.Sleep(200 * time.Millisecond) {
		last = written.Load()
	}
	if sent := written.Load() - before; sent > grpcStreamWindow+64<<10 {
		t.Errorf("the server let the client send %d bytes of an 8 MiB message while it waited to be received; want one window (%d)", sent, grpcStreamWindow)
	}
	select {
	case err := <-done:
		t.Fatalf("the call ended while the gate was held: %v", err)
	default:
	}
	for range cap(ts.gate.slots) {
		<-ts.gate.slots
	}
	if err := <-done; err != nil {
		t.Fatalf("after the gate opened: %v", err)
	}
	if sent := written.Load() - before; sent < 8<<20 {
		t.Errorf("the client wrote %d bytes in all, less than its message", sent)
	}
}

// TestRecvGateHandsOnASlowReceive: a receive that holds its slot past
// recvGateHold hands it on, and no receive waits past recvGateWait, so slow
// senders cannot stall the others.
func TestRecvGateHandsOnASlowReceive(t *testing.T) {
	// The gate admits as many receives as the budget holds maximal messages.
	if g := newRecvGate(Config{MaxRequestBytes: 1 << 20, MaxInflightBytes: 4 << 20}); cap(g.slots) != 4 {
		t.Fatalf("%d slots, want 4", cap(g.slots))
	}
	g := newRecvGate(Config{MaxRequestBytes: 1 << 20, MaxInflightBytes: 1 << 20})
	if cap(g.slots) != 1 {
		t.Fatalf("%d slots, want 1", cap(g.slots))
	}
	slow, err := g.enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recvGateHold+recvGateWait+5*time.Second)
	defer cancel()
	next, err := g.enter(ctx)
	if err != nil {
		t.Fatalf("a second receive waited past the slow one's hold: %v", err)
	}
	next.leave()
	slow.leave() // the slot was handed on already: no second give-back
	if len(g.slots) != 0 {
		t.Errorf("%d slots still taken", len(g.slots))
	}
	// A slot that never comes back (receives queued in front, each holding
	// it in turn) delays a receive by recvGateWait at most; it is not refused.
	g.slots <- struct{}{}
	ungated, err := g.enter(ctx)
	if err != nil || g.ungated.Load() != 1 {
		t.Fatalf("behind a slot that never came back: %v (ungated %d)", err, g.ungated.Load())
	}
	ungated.leave()
	if len(g.slots) != 1 {
		t.Errorf("an ungated receive gave back a slot it never took")
	}
}

// TestGRPCModelInferCardinality: ModelInfer stays unary on the wire for
// clients that break it: a second request message is refused as grpc-go
// refuses it for unary methods, and no budget stays held.
func TestGRPCModelInferCardinality(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{})
	conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, tritonpb.GRPCInferenceService_ModelInfer_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	req := &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte(strings.Repeat("长", 1000))}}}}}
	for range 2 {
		if err := st.SendMsg(req); err != nil {
			t.Fatal(err)
		}
	}
	_ = st.CloseSend()
	err = st.RecvMsg(new(tritonpb.ModelInferResponse))
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "cardinality") {
		t.Fatalf("two messages on ModelInfer: %v, want INTERNAL cardinality violation", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ts.budget.used.Load() != 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if u := ts.budget.used.Load(); u != 0 {
		t.Errorf("%d bytes of budget still held", u)
	}
	// And a well-formed call on the same connection still works.
	if _, err := tritonpb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx, req); err != nil {
		t.Errorf("ModelInfer after: %v", err)
	}
}

// BenchmarkGRPCSmallRequests: 32 concurrent ModelInfer calls of one short
// text over one connection, the case the receive gate must not slow (each
// small message is whole in its window, so the gate is held for
// microseconds). Run with
//
//	go test -run '^$' -bench GRPCSmallRequests -benchtime 4000x ./pkg/serve
func BenchmarkGRPCSmallRequests(b *testing.B) {
	ts := startRepoServer(b, 32, 2000, Config{})
	c := dialGRPC(b, ts.GRPCAddr())
	req := &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte("这家酒店非常干净，服务也很周到。")}}}}}
	call := func(int) error { _, err := c.ModelInfer(context.Background(), req); return err }
	runConcurrent(32, 256, call)
	b.ResetTimer()
	rate := runConcurrent(32, b.N, call)
	b.ReportMetric(rate, "requests/s")
}

// TestGRPCUnavailableCarriesRetryHint: an overload answer on gRPC carries
// what HTTP's Retry-After says, as a RetryInfo detail and as gRFC A6's
// grpc-retry-pushback-ms trailer; other errors carry neither.
func TestGRPCUnavailableCarriesRetryHint(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{MaxRequestBytes: 1 << 20, MaxInflightBytes: 1 << 20})
	c := dialGRPC(t, ts.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := ts.budget.reserve(1 << 18) // the whole budget
	if err != nil {
		t.Fatal(err)
	}
	req := &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte("小")}}}}}
	var trailer metadata.MD
	_, err = c.ModelInfer(ctx, req, grpc.Trailer(&trailer))
	ts.budget.release(held)
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("over the budget: %v, want UNAVAILABLE", err)
	}
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay != time.Second {
		t.Errorf("RetryInfo delay %s, want 1s (details %v)", delay, st.Details())
	}
	if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "1000" {
		t.Errorf("grpc-retry-pushback-ms trailer %v, want [1000]", got)
	}
	trailer = nil
	_, err = c.ModelInfer(ctx, &tritonpb.ModelInferRequest{ModelName: "nope"}, grpc.Trailer(&trailer))
	if st, _ := status.FromError(err); st.Code() != codes.NotFound || len(st.Details()) != 0 || len(trailer.Get("grpc-retry-pushback-ms")) != 0 {
		t.Errorf("not found: %v, details %v, trailer %v", err, st.Details(), trailer)
	}
	// Unary RPCs other than ModelInfer go through the interceptor's path.
	_, err = c.ModelMetadata(ctx, &tritonpb.ModelMetadataRequest{Name: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("ModelMetadata(nope): %v", err)
	}
}

// TestRecvGateReusesTickets: tickets come back to the pool and are reused
// without a slot lost or given back twice, one at a time and from many
// goroutines at once.
func TestRecvGateReusesTickets(t *testing.T) {
	g := newRecvGate(Config{MaxRequestBytes: 1 << 20, MaxInflightBytes: 2 << 20})
	for i := 0; i < 1000; i++ {
		tk, err := g.enter(context.Background())
		if err != nil || tk == nil {
			t.Fatalf("enter %d: %v %v", i, tk, err)
		}
		tk.leave()
		if len(g.slots) != 0 {
			t.Fatalf("after %d receives %d slots still taken", i+1, len(g.slots))
		}
	}
	parallel(8, func(int) {
		for i := 0; i < 300; i++ {
			tk, err := g.enter(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			tk.leave()
		}
	})
	if len(g.slots) != 0 || g.ungated.Load() != 0 {
		t.Errorf("%d slots still taken, %d receives let through ungated", len(g.slots), g.ungated.Load())
	}
}

// BenchmarkRecvGate is one receive's trip through the gate (the usual
// case: a slot free, the message whole in its window).
func BenchmarkRecvGate(b *testing.B) {
	g := newRecvGate(Config{MaxRequestBytes: 1 << 20, MaxInflightBytes: 4 << 20})
	b.ReportAllocs()
	for b.Loop() {
		tk, _ := g.enter(context.Background())
		tk.leave()
	}
}
