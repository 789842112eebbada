package bench

import (
	"context"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

const modelInferMethod = "/inference.GRPCInferenceService/ModelInfer"

// rawCodec sends bytes that were marshalled once, up front, and skips
// decoding the answer: the call's status alone decides success, so a
// request costs the round trip and not a protobuf encode/decode.
type rawCodec struct{}

type rawMessage struct{ b []byte }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(*rawMessage); ok {
		return m.b, nil
	}
	return nil, fmt.Errorf("rawCodec: unexpected %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error { return nil }

// Name is "proto" so the content type stays application/grpc+proto.
func (rawCodec) Name() string { return "proto" }

// grpcClient calls ModelInfer with pre-marshalled requests over a small
// pool of HTTP/2 connections (one per 16 concurrent streams).
type grpcClient struct {
	conns []*grpc.ClientConn
	reqs  []*rawMessage
}

// GRPCTarget turns a --url into a gRPC dial target: "grpc://h:p",
// "http://h:p" and "h:p" all mean h:p.
func GRPCTarget(u string) (string, error) {
	for _, p := range []string{"grpc://", "http://"} {
		u = strings.TrimPrefix(u, p)
	}
	u = strings.TrimRight(u, "/")
	if strings.HasPrefix(u, "https://") {
		return "", fmt.Errorf("url %q: TLS gRPC is not supported", u)
	}
	if _, _, err := net.SplitHostPort(u); err != nil {
		return "", fmt.Errorf("url %q: want host:port for gRPC: %w", u, err)
	}
	return u, nil
}

// NewKServeGRPCClient calls inference.GRPCInferenceService/ModelInfer with
// a BYTES input of shape [N,1] per request.
func NewKServeGRPCClient(o ClientOptions) (Client, error) {
	if len(o.Groups) == 0 {
		return nil, fmt.Errorf("no texts to send")
	}
	target, err := GRPCTarget(o.URL)
	if err != nil {
		return nil, err
	}
	if o.InputName == "" {
		o.InputName = "text"
	}
	c := &grpcClient{}
	for _, g := range o.Groups {
		contents := make([][]byte, len(g))
		for i, t := range g {
			contents[i] = []byte(t)
		}
		req := &tritonpb.ModelInferRequest{
			ModelName: o.Model, ModelVersion: o.Version,
			Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{
				Name: o.InputName, Datatype: "BYTES", Shape: []int64{int64(len(g)), 1},
				Contents: &tritonpb.InferTensorContents{BytesContents: contents},
			}},
		}
		b, err := proto.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		c.reqs = append(c.reqs, &rawMessage{b: b})
	}
	n := max(1, (o.MaxConns+15)/16)
	for range n {
		cc, err := grpc.NewClient(target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("grpc %s: %w", target, err)
		}
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

// Do sends request i; a non-OK status becomes a StatusError "grpc_<Code>".
func (c *grpcClient) Do(ctx context.Context, i int) error {
	cc := c.conns[i%len(c.conns)]
	var out rawMessage
	err := cc.Invoke(ctx, modelInferMethod, c.reqs[i%len(c.reqs)], &out, grpc.ForceCodec(rawCodec{}))
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Canceled:
		return context.Canceled
	case codes.Unavailable:
		if ctx.Err() == nil && strings.Contains(st.Message(), "connection") {
			return &StatusError{Kind: "connection", Msg: st.Message()}
		}
	}
	return &StatusError{Kind: "grpc_" + st.Code().String(), Msg: st.Message()}
}

// Close closes the connections.
func (c *grpcClient) Close() error {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
	return nil
}

// GRPCStats reads ModelStatistics over gRPC.
type GRPCStats struct {
	conn           *grpc.ClientConn
	Model, Version string
}

// NewGRPCStats connects to the server at url.
func NewGRPCStats(url, model, version string) (*GRPCStats, error) {
	target, err := GRPCTarget(url)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &GRPCStats{conn: cc, Model: model, Version: version}, nil
}

// Snapshot calls ModelStatistics and sums the model's entries.
func (g *GRPCStats) Snapshot(ctx context.Context) (*ServerSnapshot, error) {
	resp, err := tritonpb.NewGRPCInferenceServiceClient(g.conn).ModelStatistics(ctx,
		&tritonpb.ModelStatisticsRequest{Name: g.Model, Version: g.Version})
	if err != nil {
		return nil, fmt.Errorf("ModelStatistics: %w", err)
	}
	return SnapshotFromProto(resp.GetModelStats(), g.Model, g.Version)
}

// Close closes the connection.
func (g *GRPCStats) Close() error { return g.conn.Close() }

// SnapshotFromProto sums the statistics entries of model (and version).
func SnapshotFromProto(stats []*tritonpb.ModelStatistics, model, version string) (*ServerSnapshot, error) {
	snap := &ServerSnapshot{}
	found := false
	for _, m := range stats {
		if (model != "" && m.GetName() != model) || (version != "" && m.GetVersion() != version) {
			continue
		}
		found = true
		snap.InferenceCount += m.GetInferenceCount()
		snap.ExecutionCount += m.GetExecutionCount()
		is := m.GetInferenceStats()
		snap.Success += is.GetSuccess().GetCount()
		snap.Fail += is.GetFail().GetCount()
		snap.SuccessNs += is.GetSuccess().GetNs()
		snap.QueueNs += is.GetQueue().GetNs()
		snap.InputNs += is.GetComputeInput().GetNs()
		snap.InferNs += is.GetComputeInfer().GetNs()
		snap.OutputNs += is.GetComputeOutput().GetNs()
	}
	if !found {
		return nil, fmt.Errorf("statistics have no entry for model %q", model)
	}
	return snap, nil
}

// cannedGRPC is the gRPC twin of CannedServer.
type cannedGRPC struct {
	tritonpb.UnimplementedGRPCInferenceServiceServer
	url   string
	srv   *grpc.Server
	resp  *tritonpb.ModelInferResponse
	close func() error
}

func (s *cannedGRPC) ModelInfer(ctx context.Context, r *tritonpb.ModelInferRequest) (*tritonpb.ModelInferResponse, error) {
	return s.resp, nil
}

func startCannedGRPC() (*cannedGRPC, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	vec := make([]float32, 768)
	s := &cannedGRPC{url: ln.Addr().String(), srv: grpc.NewServer()}
	s.resp = &tritonpb.ModelInferResponse{ModelName: "canned", ModelVersion: "1",
		Outputs: []*tritonpb.ModelInferResponse_InferOutputTensor{{Name: "embeddings", Datatype: "FP32", Shape: []int64{1, 768},
			Contents: &tritonpb.InferTensorContents{Fp32Contents: vec}}}}
	tritonpb.RegisterGRPCInferenceServiceServer(s.srv, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.srv.Serve(ln) }()
	s.close = func() error { s.srv.Stop(); <-done; return nil }
	return s, nil
}
