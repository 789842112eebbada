package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"success", nil, ""},
		{"HTTP status", &StatusError{Kind: "http_503"}, "http_503"},
		{"wrapped gRPC code", fmt.Errorf("call: %w", &StatusError{Kind: "grpc_ResourceExhausted"}), "grpc_ResourceExhausted"},
		{"request deadline", &url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}, "timeout"},
		{"cancelled", context.Canceled, "canceled"},
		{"connection refused", refused, "connection"},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), "connection"},
		{"server closed the connection", &url.Error{Op: "Post", URL: "http://x", Err: errors.New("EOF")}, "connection"},
		{"anything else", errors.New("boom"), "other"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Classify(c.err); got != c.want {
				t.Errorf("Classify(%v) = %q, want %q", c.err, got, c.want)
			}
		})
	}
}

func TestRealTimeoutAndConnectionErrorsAreClassified(t *testing.T) {
	// A server that never answers in time, and a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer func() { close(stop); _ = srv.Close() }()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	cases := []struct{ url, want string }{
		{"http://" + ln.Addr().String(), "timeout"},
		{deadURL, "connection"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			cl, err := NewKServeHTTPClient(ClientOptions{URL: c.url, Model: "m", Groups: [][]string{{"x"}}, MaxConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if got := Classify(cl.Do(ctx, 0)); got != c.want {
				t.Errorf("Classify = %q, want %q", got, c.want)
			}
		})
	}
}
