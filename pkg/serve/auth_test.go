package serve

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

func TestCheckBearer(t *testing.T) {
	for _, tc := range []struct {
		header string
		ok     bool
	}{
		{"Bearer s3cret", true},
		{"bearer s3cret", true},
		{"BEARER s3cret", true},
		{"BeArEr  s3cret ", true},
		{"Bearer s3cre", false},
		{"Bearer s3cret2", false},
		{"Basic s3cret", false},
		{"s3cret", false},
		{"", false},
	} {
		if err := checkBearer(tc.header, "s3cret"); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.header, err, tc.ok)
		}
	}
}

// TestMetricsPortServesOnlyMetricsBehindTheKey: with a key set, the metrics
// port answers /metrics with the key (401 without), and every other path 404
// (before: all metrics on any path, without the key). With MetricsNoAuth,
// /metrics is open and the API still is not.
func TestMetricsPortServesOnlyMetricsBehindTheKey(t *testing.T) {
	get := func(url, auth string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ts := startRepoServer(t, 8, 1000, Config{APIKey: "s3cret"})
	m := "http://" + ts.MetricsAddr()
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", 401},
		{"/metrics", "Bearer wrong", 401},
		{"/metrics", "bearer s3cret", 200},
		{"/v2/health/live", "", 401},
		{"/v2/health/live", "Bearer s3cret", 404},
		{"/", "Bearer s3cret", 404},
		{"/metrics/x", "Bearer s3cret", 404},
	} {
		code, body := get(m+c.path, c.auth)
		if code != c.want {
			t.Errorf("GET %s (%q): %d, want %d", c.path, c.auth, code, c.want)
		}
		if code != 200 && strings.Contains(body, "nv_inference") {
			t.Errorf("GET %s (%q) leaks metrics", c.path, c.auth)
		}
	}

	open := startRepoServer(t, 8, 1000, Config{APIKey: "s3cret", MetricsNoAuth: true})
	if code, body := get("http://"+open.MetricsAddr()+"/metrics", ""); code != 200 || !strings.Contains(body, "nv_inference_count") {
		t.Errorf("exempt /metrics: %d", code)
	}
	if code, _ := get("http://"+open.MetricsAddr()+"/v2/health/live", ""); code != 404 {
		t.Errorf("exempt metrics port, other path: %d", code)
	}
	if code, _ := get(open.url+"/v2", ""); code != 401 {
		t.Errorf("API with metrics exempt: %d, want 401", code)
	}
}

// TestGRPCModelReadyNeedsTheKey, as GET /v2/models/{m}/ready does.
func TestGRPCModelReadyNeedsTheKey(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{APIKey: "s3cret"})
	c := dialGRPC(t, ts.GRPCAddr())
	ctx := context.Background()
	if _, err := c.ModelReady(ctx, &tritonpb.ModelReadyRequest{Name: "m3e"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ModelReady without the key: %v", err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "BEARER s3cret")
	if r, err := c.ModelReady(good, &tritonpb.ModelReadyRequest{Name: "m3e"}); err != nil || !r.GetReady() {
		t.Errorf("ModelReady with the key: %v %v", r, err)
	}
	if _, err := c.ServerReady(ctx, &tritonpb.ServerReadyRequest{}); err != nil {
		t.Errorf("ServerReady stays open: %v", err)
	}
}
