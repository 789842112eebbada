// Package serve is the wire side of `m3ectl serve`: the KServe v2 HTTP and
// gRPC protocols with Triton's extensions, OpenAI-compatible embeddings and
// the Prometheus metrics listener, in front of the model repository
// (pkg/serve/repository) and its dynamic batcher (pkg/serve/scheduler).
//
// The data path of one request, in file order: routes.go (which endpoint) →
// infer_json.go / grpc.go / openai.go (decode the wire form) →
// infer_request.go (validate, once for every protocol) → repository.Model.Infer
// (tokenise, queue, batch, engine, pool) → infer_response.go / encode.go
// (encode) with errors.go mapping every failure to a status in one table.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// serverName is what GET /v2 and gRPC ServerMetadata call this server.
const serverName = "m3ectl"

// Config is the protocol layer's configuration. Each listener is either
// given (tests pass 127.0.0.1:0 listeners) or opened from its address; an
// empty gRPC or metrics address with no listener turns that endpoint off.
type Config struct {
	HTTPAddr, GRPCAddr, MetricsAddr             string
	HTTPListener, GRPCListener, MetricsListener net.Listener
	// PprofAddr (or PprofListener) turns on Go's profiler, net/http/pprof,
	// on a listener of its own; off when both are empty (see pprofHandler).
	PprofAddr     string
	PprofListener net.Listener

	// MaxRequestBytes bounds a request body (HTTP) or message (gRPC); larger
	// requests get 413 / RESOURCE_EXHAUSTED. Default 64 MiB.
	MaxRequestBytes int64
	// MaxInflightBytes bounds the request data in flight across all
	// requests, each weighing 4× its body; a request that does not fit gets
	// 503 + Retry-After. Default 4 × MaxRequestBytes (one maximal body).
	MaxInflightBytes int64
	// Limits bound what one request may hold (see Limits).
	Limits Limits
	// APIKey, when set, is required as a bearer token on every endpoint but
	// the health checks.
	APIKey string
	// MetricsNoAuth serves /metrics without the key (for Prometheus
	// scrapers without credentials); the API stays behind it.
	MetricsNoAuth bool
	// Gatherer is the registry the repository's metrics are registered in;
	// the metrics listener serves it. Default prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer

	// MaxConnections caps the connections each listener holds open; past
	// it new ones are closed at once, with a log line. 0: 4096 (less under
	// a low descriptor limit); negative: no cap.
	MaxConnections int
	// MaxConcurrentStreams bounds the concurrent RPCs of one gRPC
	// connection. Default 1024.
	MaxConcurrentStreams uint32

	// Timeouts that cut slow clients off; zero values take the defaults
	// (10 s header, 60 s body, 120 s write, 120 s idle).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownDelay is how long, after the signal, the server keeps serving
	// every request while readiness answers 503, so that load balancers stop
	// sending first. Default 0.
	ShutdownDelay time.Duration
	// DrainTimeout bounds how long shutdown then waits for in-flight
	// requests; those still pending are answered 503. Default 30 s.
	DrainTimeout time.Duration

	// NetHTTPOnly leaves every HTTP connection to net/http instead of
	// serving plain requests on the server's own loop (lane.go); set too
	// by M3ECTL_HTTP_LANE=0.
	NetHTTPOnly bool

	Version string // reported by GET /v2
	Logger  *slog.Logger
}

// DefaultMaxRequestBytes is the default bound on a request body.
const DefaultMaxRequestBytes = 64 << 20

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if os.Getenv("M3ECTL_HTTP_LANE") == "0" {
		c.NetHTTPOnly = true
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.ReadTimeout, 60*time.Second)
	def(&c.WriteTimeout, 120*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.DrainTimeout, 30*time.Second)
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxInflightBytes <= 0 {
		c.MaxInflightBytes = decodeFactor * c.MaxRequestBytes
	}
	c.Limits.setDefaults()
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections()
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 1024
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.DefaultGatherer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Server is the m3ectl serving process: HTTP, gRPC and metrics listeners in
// front of one model repository.
type Server struct {
	repo *repository.Manager
	cfg  Config
	log  *slog.Logger

	httpLn, grpcLn, metricsLn net.Listener
	pprofLn                   net.Listener
	handler                   http.Handler
	laneHandler               http.Handler   // handler with the lane's infer route (lane_route.go)
	mux                       *http.ServeMux // handler's router (tests compare the lane's route with it)
	grpcSrv                   *grpc.Server

	drain drainState

	httpConns openConns // the HTTP listener's, for the drain deadline and the watcher
	// lane serves the HTTP listener's plain requests itself (lane.go),
	// through httpHandler, the handler net/http runs; nil when off.
	lane        *lane
	httpHandler http.Handler
	watching    atomic.Bool  // the client-gone watcher runs (clientgone.go)
	watchTick   atomic.Int64 // its ticks so far, from 1
	grpcCalls   grpcCalls    // in flight, for the drain deadline
	budget      *inflightBudget
	codec       *grpcCodec
	gate        *recvGate
	health      *healthService
}

// New binds the listeners (so that their addresses are known before Serve)
// and builds the handlers. It does not start the repository.
func New(repo *repository.Manager, cfg Config) (*Server, error) {
	if repo == nil {
		return nil, errors.New("serve: no model repository")
	}
	cfg.setDefaults()
	s := &Server{repo: repo, cfg: cfg, log: cfg.Logger}
	s.drain.init()
	s.budget = newInflightBudget(cfg.MaxInflightBytes)
	s.codec = newGRPCCodec(s)
	s.gate = newRecvGate(cfg)
	var err error
	if s.httpLn, err = listen(cfg.HTTPListener, cfg.HTTPAddr, "HTTP", true); err != nil {
		return nil, err
	}
	if s.grpcLn, err = listen(cfg.GRPCListener, cfg.GRPCAddr, "gRPC", false); err != nil {
		s.closeListeners()
		return nil, err
	}
	if s.metricsLn, err = listen(cfg.MetricsListener, cfg.MetricsAddr, "metrics", false); err != nil {
		s.closeListeners()
		return nil, err
	}
	if s.pprofLn, err = listen(cfg.PprofListener, cfg.PprofAddr, "pprof", false); err != nil {
		s.closeListeners()
		return nil, err
	}
	// Large answers in one write (cork.go), innermost so that the wrappers
	// above see the same writes as ever.
	s.httpLn = corkListener{Listener: s.httpLn, open: &s.httpConns}
	// net/http's own plain-text error answers leave as JSON (goerrors.go).
	s.httpLn = jsonErrorListener{s.httpLn}
	if s.metricsLn != nil {
		s.metricsLn = jsonErrorListener{s.metricsLn}
	}
	s.httpLn = capListener(s.httpLn, cfg.MaxConnections, "HTTP", s.log)
	s.grpcLn = capListener(s.grpcLn, cfg.MaxConnections, "gRPC", s.log)
	s.metricsLn = capListener(s.metricsLn, cfg.MaxConnections, "metrics", s.log)
	s.handler, s.laneHandler = s.routes()
	grpcOpts := []grpc.ServerOption{}
	if _, ok := s.grpcLn.(*cappedListener); ok {
		grpcOpts = append(grpcOpts, grpc.Creds(connCreds{}))
	}
	s.grpcSrv = grpc.NewServer(append(grpcOpts,
		grpc.MaxRecvMsgSize(int(min(cfg.MaxRequestBytes, 1<<31-1))),
		grpc.ForceServerCodecV2(s.codec),
		// Connections that never send a request cannot stay: the HTTP/2
		// preface and SETTINGS must come within the header timeout, an idle
		// connection is closed after the idle timeout, pings faster than
		// every 10 s are refused (GOAWAY), and one connection runs at most
		// MaxConcurrentStreams RPCs.
		grpc.ConnectionTimeout(cfg.ReadHeaderTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout, Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		// Static windows: a stream waiting for the receive gate buffers one
		// window of its message (grpc_recv.go).
		grpc.StaticStreamWindowSize(grpcStreamWindow),
		grpc.StaticConnWindowSize(grpcConnWindow),
		grpc.NumStreamWorkers(grpcStreamWorkers()),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	)...)
	s.grpcSrv.RegisterService(grpcServiceDesc(), &grpcService{s: s})
	s.health = newHealthService(s)
	healthpb.RegisterHealthServer(s.grpcSrv, s.health)
	return s, nil
}

func listen(ln net.Listener, addr, what string, required bool) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	if addr == "" {
		if required {
			return nil, fmt.Errorf("serve: no %s address", what)
		}
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s on %s: %w", what, addr, err)
	}
	return l, nil
}

func (s *Server) closeListeners() {
	for _, l := range []net.Listener{s.httpLn, s.grpcLn, s.metricsLn, s.pprofLn} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// HTTPAddr is the bound HTTP address (useful with port 0).
func (s *Server) HTTPAddr() string { return addrOf(s.httpLn) }

// GRPCAddr is the bound gRPC address, or "" when gRPC is off.
func (s *Server) GRPCAddr() string { return addrOf(s.grpcLn) }

// PprofAddr is the bound profiler address, or "" when it is off.
func (s *Server) PprofAddr() string { return addrOf(s.pprofLn) }

// MetricsAddr is the bound metrics address, or "" when metrics are off.
func (s *Server) MetricsAddr() string { return addrOf(s.metricsLn) }

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// Handler is the HTTP API (KServe v2, Triton extensions, OpenAI), for
// embedding the server in another mux or an httptest server.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) ready() bool { return !s.drain.draining.Load() && s.repo.Ready() }

// Serve starts the repository (startup models load and warm up first), then
// serves until ctx is cancelled or a listener fails. On cancellation it
// shuts down in the phases drain.go describes and closes the repository. It
// returns nil after a complete drain and an error wrapping ErrDrainCutShort
// when the drain deadline answered pending requests 503.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.repo.Start(ctx); err != nil {
		s.closeListeners()
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.DrainTimeout)
		defer cancel()
		_ = s.repo.Close(closeCtx) // free whatever loaded before the failure
		return fmt.Errorf("start model repository: %w", err)
	}
	errc := make(chan error, 3)
	var https []*http.Server
	serveHTTP := func(what string, ln net.Listener, h http.Handler) {
		srv := s.httpServer(h)
		https = append(https, srv)
		s.log.Info("listening", "protocol", what, "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s server: %w", what, err)
			}
		}()
	}
	// The watcher is on before the first request can arrive: a request
	// served before it would keep net/http's background read.
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	s.watchTick.Store(1)
	s.watching.Store(true)
	go s.watchClients(stopWatch)
	httpLn := s.httpLn
	if !s.cfg.NetHTTPOnly {
		// The lane reads the HTTP listener's connections first (lane.go).
		s.httpHandler = unwatchAfter(trackRequests(s.laneHandler))
		s.lane = newLane(s, httpLn)
		httpLn = s.lane
	}
	serveHTTP("HTTP", httpLn, s.handler)
	if s.metricsLn != nil {
		serveHTTP("metrics", s.metricsLn, s.metricsHandler())
	}
	if s.pprofLn != nil {
		serveHTTP("pprof", s.pprofLn, s.pprofHandler())
	}
	if s.grpcLn != nil {
		go s.health.run()
		s.log.Info("listening", "protocol", "gRPC", "addr", s.grpcLn.Addr().String())
		go func() {
			if err := s.grpcSrv.Serve(s.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("gRPC server: %w", err)
			}
		}()
	}

	var err error
	complete := true
	select {
	case <-ctx.Done():
		complete = s.shutdown()
	case err = <-errc:
		s.drain.draining.Store(true)
		s.drain.closing.Store(true)
		s.expireDrain()
	}
	s.health.stop()
	s.stopListeners(https)

	// Queues are empty after a complete drain; after a cut one, Close
	// answers what is left and frees the engines once running batches end.
	closeTimeout := s.cfg.DrainTimeout
	if !complete {
		closeTimeout = drainGrace
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if cerr := s.repo.Close(closeCtx); cerr != nil && err == nil && complete {
		err = fmt.Errorf("close model repository: %w", cerr)
	}
	if err == nil && !complete {
		err = s.drainSummary()
	}
	return err
}

// httpServer is one listener's server; every request's context derives from
// the drain's base context, so that the drain deadline can answer them.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           unwatchAfter(trackRequests(h)),
		ConnContext:       httpConnContext,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.drain.base },
	}
}

// stopListeners closes every listener once nothing is in flight: idle
// connections at once, the rest (slow clients) after a short grace.
func (s *Server) stopListeners(https []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), drainGrace)
	defer cancel()
	var wg sync.WaitGroup
	if s.lane != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.lane.Close()
			s.lane.shutdown(ctx)
		}()
	}
	for _, srv := range https {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if srv.Shutdown(ctx) != nil {
				_ = srv.Close()
			}
		}()
	}
	if s.grpcLn != nil {
		done := make(chan struct{})
		go func() { s.grpcSrv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpcSrv.Stop()
		}
	}
	wg.Wait()
}

// retryAfterSeconds renders a Retry-After hint, at least one second.
func retryAfterSeconds(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(secs, 1))
}

// serveGCPercent is the GOGC that `m3ectl serve` runs with unless GOGC is
// set. The server's live Go heap is small (weights live in the engine's own
// memory) while every request allocates, so Go's default of 100 collects
// thousands of times a second under load; on a GPU engine that cost a third
// of the server's throughput (BenchmarkEngineVsServer, H200: 14.0k/s at 100,
// 21.4k/s at 400).
const serveGCPercent = 400

// SetGCPercent applies serveGCPercent unless the GOGC environment variable
// chooses otherwise. The serve command calls it once at start.
func SetGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}
