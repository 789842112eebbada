package serve

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// TestDrainOnShutdown cancels Serve's context while requests wait in the
// batcher's queue: every one of them is answered, and Serve returns nil.
func TestDrainOnShutdown(t *testing.T) {
	root := t.TempDir()
	// A long queue delay holds the requests in flight when the cancel comes.
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 64, 1000000))
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root}})
	const clients = 16
	var ok, started atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		parallel(clients, func(i int) {
			started.Add(1)
			code, b := ts.post(t, "/v2/models/m3e/infer", inferBody("排队的请求"))
			if code != http.StatusOK {
				t.Errorf("in-flight request: %d %s", code, b)
				return
			}
			ok.Add(1)
		})
	}()
	// Wait until the requests are queued in the server.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var pending float64
		mfs, _ := ts.registry.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "nv_inference_pending_request_count" {
				for _, m := range mf.GetMetric() {
					pending += m.GetGauge().GetValue()
				}
			}
		}
		if pending >= clients {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.done <- nil // for the cleanup's check
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	<-done
	if ok.Load() != clients {
		t.Fatalf("%d of %d in-flight requests answered 200", ok.Load(), clients)
	}
	if _, err := http.Get(ts.url + "/v2/health/live"); err == nil {
		t.Error("server still accepting after shutdown")
	}
}

func TestAPIKeyHTTP(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{APIKey: "s3cret"})
	tests := []struct {
		name, method, path, auth string
		want                     int
	}{
		{"health live open", "GET", "/v2/health/live", "", 200},
		{"health ready open", "GET", "/v2/health/ready", "", 200},
		{"metadata needs key", "GET", "/v2", "", 401},
		{"infer needs key", "POST", "/v2/models/m3e/infer", "", 401},
		{"openai needs key", "GET", "/v1/models", "", 401},
		{"wrong key", "GET", "/v2", "Bearer nope", 401},
		{"not bearer", "GET", "/v2", "Basic czNjcmV0", 401},
		{"right key", "GET", "/v2", "Bearer s3cret", 200},
		{"right key infer", "POST", "/v2/models/m3e/infer", "Bearer s3cret", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			code, hdr, b := ts.do(t, tc.method, tc.path, []byte(inferBody("x")), h)
			if code != tc.want {
				t.Fatalf("status %d want %d: %s", code, tc.want, b)
			}
			if code == 401 {
				if strings.HasPrefix(tc.path, "/v1/") {
					openAIErrorBody(t, b)
				} else {
					errorBody(t, b)
				}
				if hdr.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
	req, _ := http.NewRequest("GET", "http://"+ts.MetricsAddr()+"/metrics", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("metrics without key: %v %v", resp, err)
	}
}

// TestSlowClientIsCutOff sends half a request header and stalls: the
// server's ReadHeaderTimeout closes the connection.
func TestSlowClientIsCutOff(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{ReadHeaderTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err == nil && !strings.Contains(line, "408") {
		t.Fatalf("slow client got %q", line)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("slow client not cut off by ReadHeaderTimeout")
	}
}

// TestOverloadAnswers503 fills a queue of two rows: the rest are told
// to come back (503 + Retry-After), and nobody goes unanswered.
func TestOverloadAnswers503(t *testing.T) {
	root := t.TempDir()
	// Batches wait up to 1 s for 32 rows, so the queue holds what arrives.
	cfg := strings.Replace(modelConfig("m3e", 32, 1000000), "dynamic_batching { ", "dynamic_batching { default_queue_policy { max_queue_size: 2 } ", 1)
	writeModel(t, root, "m3e", "1", cfg)
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root}})
	var ok, busy atomic.Int32
	parallel(24, func(int) {
		code, h, b := ts.do(t, "POST", "/v2/models/m3e/infer", []byte(inferBody("x")), nil)
		switch code {
		case 200:
			ok.Add(1)
		case 503:
			busy.Add(1)
			if h.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			var e map[string]string
			if json.Unmarshal(b, &e) != nil || e["error"] == "" {
				t.Errorf("503 body %s", b)
			}
		default:
			t.Errorf("status %d: %s", code, b)
		}
	})
	if ok.Load() == 0 || busy.Load() == 0 {
		t.Errorf("%d ok, %d overloaded: want both", ok.Load(), busy.Load())
	}
}

// TestRejectOverlongTexts: with truncation off, a text over the window is a
// 400 that says so, not a silently shortened embedding.
func TestRejectOverlongTexts(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 8, 1000))
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root, MaxLength: 16, Truncate: false}})
	if code, b := ts.post(t, "/v2/models/m3e/infer", inferBody("短句")); code != http.StatusOK {
		t.Fatalf("short text: %d %s", code, b)
	}
	code, b := ts.post(t, "/v2/models/m3e/infer", inferBody(strings.Repeat("长", 40)))
	if code != http.StatusBadRequest {
		t.Fatalf("long text: %d %s", code, b)
	}
	t.Logf("long text rejected: %s", errorBody(t, b))
}
