package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// The issue 13 reproductions of items 4, 5 and 6 against the real `m3ectl
// serve` (a subprocess: $M3ECTL_BIN or built here), with the figures the
// closing note reports. Run with
//
//	go test -run '^$' -bench 'Serve(Drain|Flood|OpenAI)' -benchtime 1x ./cmd/m3ectl

type served struct {
	cmd           *exec.Cmd
	url, grpcAddr string
	pid           int
	root          string
	gc            tritonpb.GRPCInferenceServiceClient
	conn          *grpc.ClientConn
	waited        chan struct{}
	exit          int
}

func serveBinary(b *testing.B, extra ...string) *served {
	b.Helper()
	return serveBinaryQueue(b, 8192, extra...)
}

// fdCounter counts the server's open descriptors. The directory is opened
// now, before any flood: the flooding client itself runs out of them.
func (s *served) fdCounter(b *testing.B) func() int {
	dir, err := os.Open(fmt.Sprintf("/proc/%d/fd", s.pid))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dir.Close() })
	return func() int {
		_, _ = dir.Seek(0, 0)
		es, _ := dir.ReadDir(-1)
		return len(es)
	}
}

// serveBinaryQueue is serveBinary with another max_queue_size.
func serveBinaryQueue(b *testing.B, queue int, extra ...string) *served {
	b.Helper()
	bin := os.Getenv("M3ECTL_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "m3ectl")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
	}
	root := b.TempDir()
	vdir := filepath.Join(root, "m3e-tiny", "1")
	_ = os.MkdirAll(vdir, 0o755)
	for _, f := range []string{"model.onnx", "vocab.txt"} {
		data, err := os.ReadFile(filepath.Join("../../testdata/m3e-tiny", f))
		if err != nil {
			b.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(vdir, f), data, 0o644)
	}
	// The audit's model: 8 texts per request, max_queue_size 8192.
	_ = os.WriteFile(filepath.Join(root, "m3e-tiny", "config.pbtxt"), []byte(fmt.Sprintf(`name: "m3e-tiny"
backend: "onnxruntime"
max_batch_size: 32
input [ { name: "text" dims: [ -1 ] data_type: TYPE_STRING } ]
output [ { name: "embeddings" dims: [ 64 ] data_type: TYPE_FP32 } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { default_queue_policy { max_queue_size: %d } }
`, queue)), 0o644)
	httpPort, grpcPort := freePortB(b), freePortB(b)
	args := append([]string{"serve", "--model-repository", root, "--host", "127.0.0.1",
		"--http-port", strconv.Itoa(httpPort), "--grpc-port", strconv.Itoa(grpcPort), "--metrics-port", "-1", "--threads", "1"}, extra...)
	s := &served{cmd: exec.Command(bin, args...), url: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		grpcAddr: fmt.Sprintf("127.0.0.1:%d", grpcPort), root: root, waited: make(chan struct{})}
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s.pid = s.cmd.Process.Pid
	go func() {
		_ = s.cmd.Wait()
		s.exit = s.cmd.ProcessState.ExitCode()
		close(s.waited)
	}()
	b.Cleanup(func() { _ = s.cmd.Process.Kill(); <-s.waited })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(s.url + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("server not ready")
		}
	}
	var err error
	s.conn, err = grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.conn.Close() })
	s.gc = tritonpb.NewGRPCInferenceServiceClient(s.conn)
	return s
}

func longTexts(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(strings.Repeat("酒店很好房间很大", 64)) // ~512 tokens
	}
	return out
}

func httpInfer(url string, texts [][]byte) string {
	ss := make([]string, len(texts))
	for i, t := range texts {
		ss[i] = string(t)
	}
	body, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "text", "datatype": "BYTES", "shape": []int{len(ss), 1}, "data": ss}}})
	resp, err := http.Post(url+"/v2/models/m3e-tiny/infer", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return "conn-error"
	}
	defer resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

// BenchmarkServeDrainCutShort is item 5: 200 HTTP requests and 128 gRPC
// requests of 8 long texts in flight (far more than 2 s of work), SIGTERM,
// --drain-timeout 2s.
func BenchmarkServeDrainCutShort(b *testing.B) {
	s := serveBinary(b, "--drain-timeout", "2s")
	texts := longTexts(8)
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(k string) { mu.Lock(); counts[k]++; mu.Unlock() }
	for range 200 {
		wg.Add(1)
		go func() { defer wg.Done(); add("http " + httpInfer(s.url, texts)) }()
	}
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.gc.ModelInfer(context.Background(), &tritonpb.ModelInferRequest{ModelName: "m3e-tiny",
				Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{8, 1}, Contents: &tritonpb.InferTensorContents{BytesContents: texts}}}})
			st, _ := status.FromError(err)
			add("grpc " + st.Code().String() + " " + st.Message())
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	t0 := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get(s.url + "/v2/health/ready")
	ready := "refused"
	if err == nil {
		ready = strconv.Itoa(resp.StatusCode)
		resp.Body.Close()
	}
	wg.Wait()
	<-s.waited
	b.Logf("SIGTERM with 328 in flight, --drain-timeout 2s: readiness 100 ms after: %s; exit status %d after %.1fs", ready, s.exit, time.Since(t0).Seconds())
	for k, v := range counts {
		b.Logf("  %4d × %s", v, k)
	}
}

// BenchmarkServeFlood is item 6: 19,800 connections (the audit's two
// clients of ~10,000, within this process's own descriptor limit) to the
// gRPC port, each sending only the preface and SETTINGS.
func BenchmarkServeFlood(b *testing.B) {
	s := serveBinary(b)
	fds := s.fdCounter(b)
	before := fds()
	var conns []net.Conn
	failed := 0
	for range 19800 {
		c, err := net.DialTimeout("tcp", s.grpcAddr, time.Second)
		if err != nil {
			failed++
			continue
		}
		_, _ = c.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0))
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(time.Second)
	t0 := time.Now()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(s.url + "/v2/health/live")
	health := "error " + fmt.Sprint(err)
	if err == nil {
		health = strconv.Itoa(resp.StatusCode)
		resp.Body.Close()
	}
	healthTook := time.Since(t0)
	// And gRPC itself, on a fresh connection to the flooded port.
	t1 := time.Now()
	live := "OK"
	if conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		live = err.Error()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := tritonpb.NewGRPCInferenceServiceClient(conn).ServerLive(ctx, &tritonpb.ServerLiveRequest{}); err != nil {
			live = status.Code(err).String()
		}
		cancel()
		conn.Close()
	}
	b.Logf("19,800 preface-only gRPC connections (%d dials failed): server fds %d before, %d during; /v2/health/live %s in %s; gRPC ServerLive on a new connection %s in %s",
		failed, before, fds(), health, healthTook.Round(time.Millisecond), live, time.Since(t1).Round(time.Millisecond))
}

// BenchmarkServeHTTPFlood is item 6 on the HTTP port itself: 8,000 idle
// connections (twice the default cap of 4,096), half silent, half having
// sent part of a request's headers; then, a little over a second later,
// five health checks on fresh connections.
func BenchmarkServeHTTPFlood(b *testing.B) {
	s := serveBinary(b)
	fds := s.fdCounter(b)
	before := fds()
	addr := strings.TrimPrefix(s.url, "http://")
	var conns []net.Conn
	failed := 0
	t0 := time.Now()
	for i := range 8000 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			failed++
			continue
		}
		if i%2 == 1 {
			_, _ = c.Write([]byte("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"))
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	flood := time.Since(t0)
	time.Sleep(1500 * time.Millisecond)
	during := fds()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var answers []string
	for range 5 {
		t1 := time.Now()
		resp, err := client.Get(s.url + "/v2/health/live")
		a := "error " + fmt.Sprint(err)
		if err == nil {
			a = strconv.Itoa(resp.StatusCode)
			resp.Body.Close()
		}
		answers = append(answers, fmt.Sprintf("%s in %s", a, time.Since(t1).Round(time.Microsecond)))
	}
	b.Logf("8,000 idle HTTP connections in %s (%d dials failed): server fds %d before, %d during; /v2/health/live: %s",
		flood.Round(time.Millisecond), failed, before, during, strings.Join(answers, ", "))
}

// BenchmarkServeOpenAIOversized is item 4: 10,000 inputs on an idle server,
// five times.
func BenchmarkServeOpenAIOversized(b *testing.B) {
	s := serveBinary(b)
	in := make([]string, 10000)
	for i := range in {
		in[i] = "酒店很好"
	}
	body, _ := json.Marshal(map[string]any{"model": "m3e-tiny", "input": in})
	for range 5 {
		resp, err := http.Post(s.url+"/v1/embeddings", "application/json", strings.NewReader(string(body)))
		if err != nil {
			b.Fatal(err)
		}
		var e map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		b.Logf("10,000 inputs: %d Retry-After=%q %v", resp.StatusCode, resp.Header.Get("Retry-After"), e["error"])
	}
	resp, err := http.Get(s.url + "/v2/models/m3e-tiny/stats")
	if err == nil {
		var st map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		ms, _ := st["model_stats"].([]any)
		if len(ms) > 0 {
			is := ms[0].(map[string]any)["inference_stats"].(map[string]any)
			b.Logf("stats: fail %v, success %v", is["fail"].(map[string]any)["count"], is["success"].(map[string]any)["count"])
		}
	}
}

// BenchmarkServeUnloadCallerGone is item 2: 200 requests of 8 long texts in
// flight, then an unload whose caller gives up after 0.3 s (curl -m 0.3).
func BenchmarkServeUnloadCallerGone(b *testing.B) {
	s := serveBinary(b, "--model-control-mode", "explicit", "--load-model", "m3e-tiny")
	texts := longTexts(8)
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := httpInfer(s.url, texts)
			mu.Lock()
			counts[code]++
			mu.Unlock()
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	client := &http.Client{Timeout: 300 * time.Millisecond}
	_, err := client.Post(s.url+"/v2/repository/models/m3e-tiny/unload", "application/json", nil)
	wg.Wait()
	resp, ierr := http.Post(s.url+"/v2/repository/index", "application/json", nil)
	index := ""
	if ierr == nil {
		var es []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&es)
		resp.Body.Close()
		index = fmt.Sprint(es)
	}
	b.Logf("unload caller: %v; in-flight answers %v; index after: %s", err, counts, index)
}
