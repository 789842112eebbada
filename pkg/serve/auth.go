package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// With an API key configured every endpoint requires "Authorization: Bearer
// KEY" (HTTP header or gRPC metadata), except the health checks, which load
// balancers and orchestrators call without credentials.

// healthPaths are the HTTP endpoints open without the key.
var healthPaths = map[string]bool{"/v2/health/live": true, "/v2/health/ready": true, "/health": true}

// healthMethods are the gRPC methods open without the key, as the HTTP
// health paths are; ModelReady needs the key, as GET .../ready does.
var healthMethods = map[string]bool{
	tritonpb.GRPCInferenceService_ServerLive_FullMethodName:  true,
	tritonpb.GRPCInferenceService_ServerReady_FullMethodName: true,
	// grpc.health.v1.Health: what Kubernetes' grpc probe and
	// grpc_health_probe call, without credentials.
	healthpb.Health_Check_FullMethodName: true,
	healthpb.Health_Watch_FullMethodName: true,
}

// checkBearer reports whether an Authorization value carries the key. The
// scheme is case-insensitive (RFC 7235 §2.1: "Bearer", "bearer", "BEARER").
// The token and the key are compared as SHA-256 digests, fixed-size and in
// constant time, so that neither the key's bytes nor its length leak
// through timing (subtle.ConstantTimeCompare returns at once on a length
// mismatch).
func checkBearer(authorization, key string) error {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errorf(kindUnauthenticated, "missing API key: send the header \"Authorization: Bearer <key>\"")
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return errorf(kindUnauthenticated, "invalid API key")
	}
	return nil
}

// authenticate wraps an HTTP handler with the API-key check.
func (s *Server) authenticate(next http.Handler) http.Handler {
	key := s.cfg.APIKey
	if key == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthPaths[r.URL.Path] {
			if err := checkBearer(r.Header.Get("Authorization"), key); err != nil {
				s.writeErrorFor(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) grpcAuth(ctx context.Context, method string) error {
	if s.cfg.APIKey == "" || healthMethods[method] {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) == 0 {
		return grpcError(errorf(kindUnauthenticated, "missing API key: send metadata \"authorization: Bearer <key>\""))
	}
	return grpcError(checkBearer(v[0], s.cfg.APIKey))
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	defer func() { release, _ := s.codec.admit(req); release() }() // weight of a message never served
	if cc := rpcConn(ctx); cc != nil {
		cc.begin() // not idle while the RPC runs (connlimit.go)
		defer cc.end()
	}
	if err := s.grpcAuth(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	if healthMethods[info.FullMethod] {
		return handler(ctx, req)
	}
	var resp any
	err := s.grpcTracked(ctx, func(ctx context.Context) error {
		var err error
		resp, err = handler(ctx, req)
		return err
	})
	err = grpcError(err)
	setRetryPushback(func(md metadata.MD) error { return grpc.SetTrailer(ctx, md) }, err)
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if cc := rpcConn(ss.Context()); cc != nil {
		cc.begin()
		defer cc.end()
	}
	if err := s.grpcAuth(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
