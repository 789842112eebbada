package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// CannedServer is a trivial in-process server that answers every KServe v2
// or OpenAI embeddings request at once with a fixed, realistically sized
// response (one 768-wide embedding). Benchmarking it measures the client's
// own ceiling.
type CannedServer struct {
	URL  string
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// StartCannedServer listens on 127.0.0.1:0.
func StartCannedServer() (*CannedServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	vec := make([]float32, 768)
	for i := range vec {
		vec[i] = float32(i%17) / 17
	}
	kserve, _ := json.Marshal(map[string]any{
		"model_name": "canned", "model_version": "1",
		"outputs": []any{map[string]any{"name": "embeddings", "datatype": "FP32", "shape": []int{1, 768}, "data": vec}},
	})
	openai, _ := json.Marshal(map[string]any{
		"object": "list", "model": "canned",
		"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": vec}},
		"usage": map[string]int{"prompt_tokens": 10, "total_tokens": 10},
	})
	mux := http.NewServeMux()
	answer := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("POST /v2/models/{model}/infer", answer(kserve))
	mux.HandleFunc("POST /v2/models/{model}/versions/{v}/infer", answer(kserve))
	mux.HandleFunc("POST /v1/embeddings", answer(openai))
	s := &CannedServer{URL: "http://" + ln.Addr().String(), ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener was closed under us; Close reports nothing more useful
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *CannedServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// MeasureCeiling runs one closed-loop level of conc workers for d against a
// canned in-process server speaking protocol, and returns the client's
// ceiling. The client and server share this machine's cores, so the figure
// is a lower bound of what the client alone could do. progress may be nil.
func MeasureCeiling(ctx context.Context, protocol string, conc int, d time.Duration, groups [][]string, progress *Progress) (*Ceiling, Level, error) {
	var (
		url   string
		close func() error
	)
	switch protocol {
	case ProtoKServeGRPC:
		s, err := startCannedGRPC()
		if err != nil {
			return nil, Level{}, err
		}
		url, close = s.url, s.close
	default:
		s, err := StartCannedServer()
		if err != nil {
			return nil, Level{}, err
		}
		url, close = s.URL, s.Close
	}
	defer close()
	cl, err := NewClient(protocol, ClientOptions{URL: url, Model: "canned", Groups: groups, MaxConns: conc})
	if err != nil {
		return nil, Level{}, err
	}
	defer cl.Close()
	res, err := Run(ctx, Config{
		Protocol: protocol, URL: url, Model: "canned", Concurrency: []int{conc},
		Warmup: min(d/5, time.Second), Duration: d, Client: cl, Progress: progress,
	})
	if err != nil {
		return nil, Level{}, err
	}
	lv := res.Levels[0]
	if lv.Errors > 0 {
		return nil, lv, fmt.Errorf("canned server answered %d errors (%s)", lv.Errors, kinds(lv.ErrorsByKind))
	}
	return &Ceiling{Protocol: protocol, Concurrency: conc, Throughput: lv.Throughput, P50: lv.Latency.P50, P99: lv.Latency.P99}, lv, nil
}

// NewClient builds the client for a --protocol value.
func NewClient(protocol string, o ClientOptions) (Client, error) {
	switch strings.ToLower(protocol) {
	case ProtoKServeHTTP, "":
		return NewKServeHTTPClient(o)
	case ProtoOpenAI:
		return NewOpenAIClient(o)
	case ProtoKServeGRPC:
		return NewKServeGRPCClient(o)
	}
	return nil, fmt.Errorf("unknown protocol %q (want %s)", protocol, strings.Join(Protocols, ", "))
}
