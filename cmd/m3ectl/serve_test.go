package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServeCommand starts `m3ectl serve --model` on the bundled model,
// answers the article's request, and returns nil (exit 0) when its context
// ends, as on SIGTERM.
func TestServeCommand(t *testing.T) {
	if err := onnxrt.Init(""); err != nil {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	port := freePort(t)
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"serve", "--model", "../../testdata/m3e-tiny/model.onnx", "--name", "m3e",
		"--host", "127.0.0.1", "--http-port", strconv.Itoa(port), "--grpc-port", "-1", "--metrics-port", "-1", "--threads", "1"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err = http.Post(url+"/v2/models/m3e/infer", "application/json",
			strings.NewReader(`{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES","data":["酒店很好"]}]}`))
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("article request: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after shutdown, want nil (exit 0)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"serve"}, "--model-repository DIR or --model PATH"},
		{"both sources", []string{"serve", "--model", "x", "--model-repository", "y"}, "exclude each other"},
		{"missing model file", []string{"serve", "--model", "does/not/exist.onnx", "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--metrics-port", "-1"}, "exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			root.SetOut(&bytes.Buffer{})
			root.SetErr(&bytes.Buffer{})
			root.SetArgs(tc.args)
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v; want one line containing %q", err, tc.want)
			}
		})
	}
}
