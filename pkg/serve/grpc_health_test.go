package serve

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// TestGRPCHealth speaks grpc.health.v1.Health as grpc_health_probe and
// Kubernetes' grpc probe do: no credentials, service "" or a model name.
func TestGRPCHealth(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 4, 0))
	ts := startServer(t, serverOpts{
		repo: repository.Config{Root: root, ControlMode: "explicit", StartupModels: []string{"m3e"}},
		cfg:  Config{APIKey: "s3cret"},
	})
	conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	check := func(service string) (healthpb.HealthCheckResponse_ServingStatus, codes.Code) {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		return r.GetStatus(), status.Code(err)
	}
	if st, code := check(""); st != healthpb.HealthCheckResponse_SERVING || code != codes.OK {
		t.Fatalf("server: %v %v", st, code)
	}
	if st, code := check("m3e"); st != healthpb.HealthCheckResponse_SERVING || code != codes.OK {
		t.Fatalf("model: %v %v", st, code)
	}
	if _, code := check("nope"); code != codes.NotFound {
		t.Fatalf("unknown service: %v, want NotFound", code)
	}

	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "m3e"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch answer %v %v", r, err)
	}
	code, _, b := ts.do(t, "POST", "/v2/repository/models/m3e/unload", nil, map[string]string{"Authorization": "Bearer s3cret"})
	if code != 200 {
		t.Fatalf("unload: %d %s", code, b)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after unload %v %v", r, err)
	}
	if st, _ := check("m3e"); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check after unload: %v", st)
	}

	// Draining ends open Watch streams, so shutdown does not wait on them.
	ts.cancel()
	for {
		r, err := watch.Recv()
		if err != nil {
			break
		}
		if r.Status == healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("SERVING during drain")
		}
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatal(err)
		}
		ts.done <- nil // for the cleanup's check
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return: an open Watch held the drain")
	}
}
