package serve

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// The standard gRPC health service (grpc.health.v1.Health) on the gRPC
// port, as Triton registers it (src/grpc/grpc_server.cc@r24.08
// HealthCallbackService): service "" is the server (SERVING when live and
// every startup model is ready, NOT_SERVING while draining), and each model
// name is a service of its own, SERVING while a version of it is ready.
// Kubernetes `grpc:` probes and grpc_health_probe ask exactly this.

// healthSyncInterval is how often Watch streams see a change at the latest;
// Check always answers the state of the moment.
const healthSyncInterval = 250 * time.Millisecond

// healthService is grpc-go's health server with a Check that refreshes the
// statuses first.
type healthService struct {
	*health.Server
	s       *Server
	once    sync.Once
	stopped chan struct{} // closed by stop: the sync loop ends
	done    chan struct{} // closed after stop: Watch streams end
}

func newHealthService(s *Server) *healthService {
	return &healthService{Server: health.NewServer(), s: s, stopped: make(chan struct{}), done: make(chan struct{})}
}

// Watch streams status changes until the client goes or the server drains:
// an open Watch must not hold a graceful stop for the whole drain timeout.
func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return h.Server.Watch(req, watchStream{stream, ctx})
}

// watchStream is a Watch stream whose context also ends on drain.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }

// Check answers the current status of the server or a model; an unknown
// service name is NOT_FOUND, as the health protocol requires.
func (h *healthService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.sync()
	return h.Server.Check(ctx, req)
}

// sync sets every status from the repository.
func (h *healthService) sync() {
	status := func(ok bool) healthpb.HealthCheckResponse_ServingStatus {
		if ok {
			return healthpb.HealthCheckResponse_SERVING
		}
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	h.SetServingStatus("", status(h.s.ready()))
	ready := map[string]bool{}
	for _, e := range h.s.repo.Index(false) {
		ready[e.Name] = ready[e.Name] || e.State == repository.StateReady
	}
	for name, ok := range ready {
		h.SetServingStatus(name, status(ok && !h.s.drain.draining.Load()))
	}
}

// run keeps the statuses current for Watch streams until stop.
func (h *healthService) run() {
	t := time.NewTicker(healthSyncInterval)
	defer t.Stop()
	for {
		h.sync()
		select {
		case <-h.stopped:
			return
		case <-t.C:
		}
	}
}

// stop turns every service NOT_SERVING (grpc-go's Shutdown) and, a moment
// later so that watchers receive it, ends the open Watch streams, which a
// graceful stop would otherwise wait on.
func (h *healthService) stop() {
	h.once.Do(func() {
		h.Shutdown()
		close(h.stopped)
		time.AfterFunc(100*time.Millisecond, func() { close(h.done) })
	})
}
