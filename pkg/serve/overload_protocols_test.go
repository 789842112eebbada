package serve

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// TestOverloadPerProtocol: a full queue is OpenAI's 429 rate_limit_exceeded
// and TEI's 429 Overloaded, each with Retry-After and in its own body,
// while KServe clients get 503 (TestOverloadAnswers503).
func TestOverloadPerProtocol(t *testing.T) {
	root := t.TempDir()
	// Batches wait up to 1 s for 32 rows, so the queue of two holds what arrives.
	cfg := strings.Replace(modelConfig("m3e", 32, 1000000), "dynamic_batching { ", "dynamic_batching { default_queue_policy { max_queue_size: 2 } ", 1)
	writeModel(t, root, "m3e", "1", cfg)
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root}})
	for _, tc := range []struct {
		path, body string
		check      func(b []byte) bool
	}{
		{"/v1/embeddings", `{"model":"m3e","input":"x"}`, func(b []byte) bool {
			e := openAIErrorBody(t, b)
			return str(e.Code) == "rate_limit_exceeded" && str(e.Type) == "requests"
		}},
		{"/embed", `{"inputs":"x"}`, func(b []byte) bool {
			var e map[string]string
			return json.Unmarshal(b, &e) == nil && e["error_type"] == "Overloaded" && e["error"] != ""
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var ok, busy atomic.Int32
			parallel(24, func(int) {
				code, h, b := ts.do(t, "POST", tc.path, []byte(tc.body), nil)
				switch code {
				case 200:
					ok.Add(1)
				case 429:
					busy.Add(1)
					if h.Get("Retry-After") == "" || !tc.check(b) {
						t.Errorf("429 without Retry-After or in the wrong shape: %v %s", h, b)
					}
				default:
					t.Errorf("status %d: %s", code, b)
				}
			})
			if ok.Load() == 0 || busy.Load() == 0 {
				t.Errorf("%d ok, %d overloaded: want both", ok.Load(), busy.Load())
			}
		})
	}
}
