package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// BenchmarkServeMemory starts the real `m3ectl serve` (a subprocess, built
// without the race detector, or $M3ECTL_BIN) on the tiny model and reads
// its RSS from /proc while hostile and maximal requests arrive: the issue 13
// amplification reproductions, one at a time (peak over the start, as a
// multiple of the body), then eight maximal bodies at once on HTTP and on
// gRPC, then the RSS after the flood. Run it with
//
//	go test -run '^$' -bench ServeMemory -benchtime 1x ./cmd/m3ectl
func BenchmarkServeMemory(b *testing.B) {
	bin := os.Getenv("M3ECTL_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "m3ectl")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
	}
	httpPort, grpcPort, metricsPort := freePortB(b), freePortB(b), freePortB(b)
	cmd := exec.Command(bin, "serve", "--model", "../../testdata/m3e-tiny/model.onnx", "--name", "m3e-tiny",
		"--host", "127.0.0.1", "--http-port", strconv.Itoa(httpPort), "--grpc-port", strconv.Itoa(grpcPort),
		"--metrics-port", strconv.Itoa(metricsPort), "--threads", "1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("server not ready")
		}
	}
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	gc := tritonpb.NewGRPCInferenceServiceClient(conn)

	// Warm up both protocols, and the engine with a full batch (32 texts of
	// 512 tokens): ONNX Runtime's arena grows to what the largest batch
	// needs (~600 MB for the tiny model's 32×512 attention) and keeps it,
	// whatever the body size. The start is the steady state of a server that
	// has seen one full batch; what follows measures what bodies add.
	idle := rss(b, pid, "VmRSS")
	full := make([]string, 32)
	for i := range full {
		full[i] = `"` + strings.Repeat("酒店很好", 200) + `"`
	}
	if a := postHTTP(url, []byte(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[32,1],"data":[`+strings.Join(full, ",")+`]}]}`)); !strings.HasPrefix(a, "200") {
		b.Fatalf("warm-up: %s", a)
	}
	inferGRPC(gc, &tritonpb.ModelInferRequest{ModelName: "m3e-tiny", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{textTensor([][]byte{[]byte("酒店很好")})}})
	time.Sleep(time.Second)
	start := rss(b, pid, "VmRSS")
	b.Logf("RSS idle %d MB; start (after the warm-up batch) %d MB; Go %s", idle>>20, start>>20, goMemory(metricsPort))

	// One request at a time: peak RSS over the start, in multiples of the body.
	single := []struct {
		name string
		body []byte
		grpc *tritonpb.ModelInferRequest
	}{
		{name: "http 6M empty objects", body: emptyObjects(6_000_000)},
		{name: "http 15M empty strings", body: emptyStrings(15_000_000)},
		{name: "http maximal (32 texts, 60 MB)", body: maximalHTTP(60 << 20)},
		{name: "grpc 8M empty tensors", grpc: emptyTensors(8_000_000)},
		{name: "grpc maximal (32 texts, 60 MB)", grpc: maximalGRPC(60 << 20)},
	}
	// Each case starts once the previous one's memory has been handed back
	// (the hand-back runs 250 ms after the budget empties).
	settle := func() { time.Sleep(time.Second) }
	worstSingle := 0.0
	for _, c := range single {
		settle()
		resetPeak(b, pid)
		base := rss(b, pid, "VmRSS")
		t0 := time.Now()
		var answer string
		size := len(c.body)
		if c.grpc != nil {
			size = proto.Size(c.grpc)
			answer = inferGRPC(gc, c.grpc)
		} else {
			answer = postHTTP(url, c.body)
		}
		peak := rss(b, pid, "VmHWM")
		worstSingle = max(worstSingle, float64(peak-base)/float64(size))
		b.Logf("%-32s body %4d MB  answer %-40.40s in %5.2fs  peak +%4d MB (%.2fx body)", c.name, size>>20, answer, time.Since(t0).Seconds(), (peak-base)>>20, float64(peak-base)/float64(size))
	}

	if worstSingle > 4 {
		b.Errorf("a single request raised peak RSS by %.2fx its body, over the 4x target", worstSingle)
	}
	b.ReportMetric(worstSingle, "single-peak/body")

	// Eight maximal bodies at once, HTTP then gRPC, several rounds; after
	// each round the RSS must come back to within 10% of the start.
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("M3ECTL_FLOOD_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	body, req := maximalHTTP(60<<20), maximalGRPC(60<<20)
	worstAfter := 0.0
	peaks := map[string]int64{}
	for round := 1; round <= rounds; round++ {
		for _, proto := range []string{"http", "grpc"} {
			settle()
			resetPeak(b, pid)
			counts := map[string]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			t0 := time.Now()
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var a string
					if proto == "http" {
						a = postHTTP(url, body)
					} else {
						a = inferGRPC(gc, req)
					}
					mu.Lock()
					counts[strings.SplitN(a, " ", 2)[0]]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			peak := rss(b, pid, "VmHWM")
			peaks[proto] = max(peaks[proto], peak)
			b.Logf("round %d: 8 x maximal %-4s: answers %v in %.1fs, peak RSS %d MB", round, proto, counts, time.Since(t0).Seconds(), peak>>20)
			if counts["200"]+counts["OK"] == 0 {
				b.Errorf("round %d %s: no request of the flood was served", round, proto)
			}
		}
		time.Sleep(5 * time.Second)
		after := rss(b, pid, "VmRSS")
		rel := float64(after-start) / float64(start)
		worstAfter = max(worstAfter, rel)
		b.Logf("round %d: RSS 5 s after the floods %d MB (start %d MB, %+.1f%%); Go %s", round, after>>20, start>>20, 100*rel, goMemory(metricsPort))
	}
	for proto, peak := range peaks {
		if peak > 600<<20 {
			b.Errorf("8 x maximal %s: peak RSS %d MB, over the 600 MB target", proto, peak>>20)
		}
	}
	if worstAfter > 0.10 {
		b.Errorf("RSS after a flood is %+.1f%% of the start, over the 10%% target", 100*worstAfter)
	}
	b.ReportMetric(float64(peaks["http"])/(1<<20), "http-peak-MB")
	b.ReportMetric(float64(peaks["grpc"])/(1<<20), "grpc-peak-MB")
	b.ReportMetric(1+worstAfter, "after/start")
}

// goMemory is the Go runtime's view of the server's memory, from /metrics:
// what the heap holds and what it has handed back, the rest of RSS being
// ONNX Runtime's and the C allocator's.
func goMemory(port int) string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, m := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes"} {
			if v, ok := strings.CutPrefix(sc.Text(), m+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				out = append(out, fmt.Sprintf("%s %.0f MB", strings.TrimSuffix(strings.TrimPrefix(m, "go_memstats_"), "_bytes"), f/(1<<20)))
			}
		}
	}
	return strings.Join(out, ", ")
}

func freePortB(b *testing.B) int {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// rss reads one field (VmRSS, VmHWM) of /proc/pid/status in bytes.
func rss(b *testing.B, pid int, field string) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5).
func resetPeak(b *testing.B, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}

func postHTTP(url string, body []byte) string {
	resp, err := http.Post(url+"/v2/models/m3e-tiny/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		return "error " + err.Error()
	}
	defer resp.Body.Close()
	var msg bytes.Buffer
	_, _ = msg.ReadFrom(resp.Body)
	return strconv.Itoa(resp.StatusCode) + " " + strings.TrimSpace(msg.String())
}

func inferGRPC(c tritonpb.GRPCInferenceServiceClient, req *tritonpb.ModelInferRequest) string {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	_, err := c.ModelInfer(ctx, req)
	if err == nil {
		return "OK"
	}
	st, _ := status.FromError(err)
	return st.Code().String() + " " + st.Message()
}

func textTensor(texts [][]byte) *tritonpb.ModelInferRequest_InferInputTensor {
	return &tritonpb.ModelInferRequest_InferInputTensor{Name: "text", Datatype: "BYTES", Shape: []int64{int64(len(texts)), 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: texts}}
}

// emptyObjects is the first reproduction: one real input, then n {}.
func emptyObjects(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":[""]}`)
	for range n {
		b.WriteString(",{}")
	}
	b.WriteString("]}")
	return b.Bytes()
}

// emptyStrings is one input of n empty strings.
func emptyStrings(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"inputs":[{"name":"text","datatype":"BYTES","shape":[%d],"data":[""`, n)
	for range n - 1 {
		b.WriteString(`,""`)
	}
	b.WriteString("]}]}")
	return b.Bytes()
}

// maximalText is one text of about n bytes of Chinese.
func maximalText(n int) string { return strings.Repeat("酒店很好", n/12) }

// maximalHTTP is 32 texts (the --model shortcut's max_batch_size) in size bytes.
func maximalHTTP(size int) []byte {
	texts := make([]string, 32)
	for i := range texts {
		texts[i] = `"` + maximalText(size/32) + `"`
	}
	return []byte(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[32,1],"data":[` + strings.Join(texts, ",") + `]}]}`)
}

func maximalGRPC(size int) *tritonpb.ModelInferRequest {
	texts := make([][]byte, 32)
	for i := range texts {
		texts[i] = []byte(maximalText(size / 32))
	}
	return &tritonpb.ModelInferRequest{ModelName: "m3e-tiny", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{textTensor(texts)}}
}

// emptyTensors is the gRPC reproduction: n input tensors, all empty.
func emptyTensors(n int) *tritonpb.ModelInferRequest {
	req := &tritonpb.ModelInferRequest{ModelName: "m3e-tiny", Inputs: make([]*tritonpb.ModelInferRequest_InferInputTensor, n)}
	for i := range req.Inputs {
		req.Inputs[i] = &tritonpb.ModelInferRequest_InferInputTensor{}
	}
	return req
}
