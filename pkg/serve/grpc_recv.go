package serve

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// grpc-go reads a unary message whole (granting the sender flow-control
// window for all of it) before any codec, interceptor or handler sees it,
// so eight concurrent 60 MB ModelInfer messages used to cost 480 MB of
// transport buffers even though seven were then refused. ModelInfer is
// therefore served as a stream handler (identical on the wire: the client
// sends one message and half-closes, the server answers one message and a
// status; grpc-go enforces that cardinality for non-streaming descriptors,
// stream.go@v1.85.0 serverStream.RecvMsg), which decides when the message
// is read. Before it calls RecvMsg it takes a slot of the receive gate:
// the message's size is unknown until grpc-go reads its 5-byte prefix, so
// each receive counts as a maximal message of wire bytes, and the gate
// admits as many as the in-flight budget holds maximal messages (four, by
// default: 256 MiB / 64 MiB). One slot was measured to halve small-request
// gRPC throughput at c=128 on the H200 host (every receive waited for the
// one before it to hand the slot on: a goroutine wake-up each), while the
// decoded weight below already lets one maximal message at a time into
// the engine. M3ECTL_GRPC_RECV_SLOTS overrides the count for
// measurements. Inside
// RecvMsg the codec reserves the decoded weight from the budget (refusal:
// UNAVAILABLE), and the slot goes back when RecvMsg returns (or after
// recvGateHold). A stream waiting for its slot holds one flow-control
// window of its message (grpcStreamWindow: a static window, as BDP
// estimation would grow it to 16 MiB). Small messages are already whole in
// their window, so the slot is held for microseconds and does not
// serialise them measurably (BenchmarkGRPCSmallRequests).

const (
	// grpcStreamWindow is the static per-stream flow-control window: what a
	// stream may buffer before its handler reads, and the largest message
	// that arrives without a window update (ample for short texts: 32 of
	// them are a few kB; a larger message waits one round trip for the
	// window grpc-go grants when it starts reading it).
	grpcStreamWindow = 256 << 10
	// grpcConnWindow is the static per-connection window. grpc-go returns
	// connection window as frames arrive, not as handlers read
	// (http2_server.go@v1.85.0 handleData), so it does not bound memory; it
	// only has to cover several streams' windows.
	grpcConnWindow = 16 << 20
	// recvGateHold is how long one receive keeps its slot. A message still
	// arriving after that comes slower than MaxRequestBytes per second
	// (its buffers grow at the sender's pace), so the slot is handed on.
	recvGateHold = time.Second
	// recvGateWait is how long a stream waits for a slot before it is read
	// anyway. Senders that trickle could otherwise queue up in front of
	// every other call, each holding the slot for recvGateHold: waiting is
	// bounded, never refused. Eight concurrent 60 MB messages pass the gate
	// one by one in about 1.5 s on this project's 2-core machine.
	recvGateWait = 2 * time.Second
)

// recvGate bounds the gRPC messages being received at once.
type recvGate struct {
	slots   chan struct{}
	wait    atomic.Int64 // recvGateWait in nanoseconds; tests lengthen it
	ungated atomic.Int64 // receives that went without a slot, for tests
	tickets sync.Pool    // *gateTicket whose timer never fired
}

func newRecvGate(cfg Config) *recvGate {
	n := max(1, cfg.MaxInflightBytes/cfg.MaxRequestBytes)
	if v, err := strconv.ParseInt(os.Getenv("M3ECTL_GRPC_RECV_SLOTS"), 10, 64); err == nil && v > 0 {
		n = v
	}
	g := &recvGate{slots: make(chan struct{}, min(n, 1024))}
	g.wait.Store(int64(recvGateWait))
	return g
}

// gateTicket is one receive's slot. Tickets and their hold timers are
// reused (a timer and three closures per call before): a ticket goes back
// to the pool only when its timer was stopped before it fired, so a late
// timer never gives back the slot of the ticket's next receive.
type gateTicket struct {
	g     *recvGate
	given atomic.Bool
	hold  *time.Timer // gives the slot back after recvGateHold
}

func (t *gateTicket) give() {
	if t.given.CompareAndSwap(false, true) {
		<-t.g.slots
	}
}

// leave gives the slot back (if the hold timer has not already); call it
// once. A nil ticket (a receive let through without a slot) holds nothing.
func (t *gateTicket) leave() {
	if t == nil {
		return
	}
	stopped := t.hold.Stop()
	t.give()
	if stopped {
		t.g.tickets.Put(t)
	}
}

// enter waits for a slot; the ticket's leave gives it back, and so does a
// timer after recvGateHold. After recvGateWait it lets the receive go
// without a slot (a nil ticket).
func (g *recvGate) enter(ctx context.Context) (*gateTicket, error) {
	select {
	case g.slots <- struct{}{}:
	default:
		t := time.NewTimer(time.Duration(g.wait.Load()))
		defer t.Stop()
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			g.ungated.Add(1)
			return nil, nil
		}
	}
	if t, ok := g.tickets.Get().(*gateTicket); ok {
		t.given.Store(false)
		t.hold.Reset(recvGateHold)
		return t, nil
	}
	t := &gateTicket{g: g}
	t.hold = time.AfterFunc(recvGateHold, t.give)
	return t, nil
}

// grpcStreamWorkers is how many long-lived goroutines run the gRPC
// server's streams. Without them grpc-go starts a goroutine per RPC
// (server.go@v1.85.0 serveStreams), whose stack then grows by copying as
// the call descends through the transport, the handler, the scheduler and
// the tokenizer: runtime.copystack was 12–16% of the server's CPU per
// ModelInfer at c=128 (the 2-core box, the null engine). A worker keeps
// its grown stack from call to call (grpc-go replaces it every 65,536
// calls, so that a large stack does not live forever); calls beyond the
// workers, all busy, get a goroutine of their own as before. 256 covers
// the concurrency of the usual benchmark clients for about 256 idle
// goroutines' memory. M3ECTL_GRPC_STREAM_WORKERS overrides it for
// measurements (0: none).
func grpcStreamWorkers() uint32 {
	if v, err := strconv.ParseUint(os.Getenv("M3ECTL_GRPC_STREAM_WORKERS"), 10, 16); err == nil {
		return uint32(v)
	}
	return 256
}

// grpcServiceDesc is the generated service description with ModelInfer
// moved from Methods to Streams (see above).
func grpcServiceDesc() *grpc.ServiceDesc {
	d := tritonpb.GRPCInferenceService_ServiceDesc
	d.Methods = slices.DeleteFunc(slices.Clone(d.Methods), func(m grpc.MethodDesc) bool { return m.MethodName == "ModelInfer" })
	d.Streams = append(slices.Clone(d.Streams), grpc.StreamDesc{StreamName: "ModelInfer", Handler: modelInferHandler})
	return &d
}

func modelInferHandler(srv any, ss grpc.ServerStream) error {
	return srv.(*grpcService).modelInferStream(ss)
}

// modelInferStream serves one unary ModelInfer call: the key was checked
// by the stream interceptor before any byte of the message was read.
func (g *grpcService) modelInferStream(ss grpc.ServerStream) error {
	req := new(tritonpb.ModelInferRequest)
	defer func() { release, _ := g.s.codec.admit(req); release() }() // a message received but never served
	var resp *tritonpb.ModelInferResponse
	err := g.s.grpcTracked(ss.Context(), func(ctx context.Context) error {
		if err := g.s.receiveGRPC(ctx, ss, req); err != nil {
			return err
		}
		var err error
		resp, err = g.modelInfer(ctx, req)
		return err
	})
	if err != nil {
		err = grpcError(err)
		setRetryPushback(func(md metadata.MD) error { ss.SetTrailer(md); return nil }, err)
		return err
	}
	return ss.SendMsg(resp)
}

// receiveGRPC reads one request message through the receive gate.
func (s *Server) receiveGRPC(ctx context.Context, ss grpc.ServerStream, m any) error {
	t, err := s.gate.enter(ctx)
	if err != nil {
		return err
	}
	defer t.leave()
	return ss.RecvMsg(m)
}

// grpcStatus is the gRPC form of an error of the table. The answers HTTP
// sends with Retry-After (overloaded, unavailable: loading, unloading,
// shutting down) carry the same hint twice: a google.rpc.RetryInfo detail,
// which clients read with status.Details (the AIP-194 convention), and
// setRetryPushback's trailer.
func grpcStatus(kind errorKind, msg string, retry time.Duration) error {
	st := status.New(errorTable[kind].grpc, msg)
	if kind != kindOverloaded && kind != kindUnavailable {
		return st.Err()
	}
	withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryDelay(retry))})
	if err != nil {
		return st.Err()
	}
	return withRetry.Err()
}

// retryDelay is the hint for a Retry-After of d: at least a second, as the
// HTTP header's whole seconds are.
func retryDelay(d time.Duration) time.Duration {
	return max(d.Round(time.Second), time.Second)
}

// setRetryPushback adds grpc-retry-pushback-ms (gRFC A6: a client whose
// retry policy covers UNAVAILABLE waits that long before its next attempt)
// to an answer that carries a RetryInfo detail.
func setRetryPushback(set func(metadata.MD) error, err error) {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			_ = set(metadata.Pairs("grpc-retry-pushback-ms", strconv.FormatInt(ri.GetRetryDelay().AsDuration().Milliseconds(), 10)))
			return
		}
	}
}
