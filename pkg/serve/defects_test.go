package serve

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// TestSmallDefects: the audit's smaller findings, one each.
func TestSmallDefects(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 8, 1000))
	writeModel(t, root, "other", "1", modelConfig("other", 8, 1000))
	writeModel(t, root, "broken", "1", modelConfig("broken", 8, 1000))
	if err := os.Remove(filepath.Join(root, "broken", "1", "model.onnx")); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root, ControlMode: "explicit", StartupModels: []string{"m3e"}}})

	t.Run("timeout that overflows a duration means none", func(t *testing.T) {
		body := `{"parameters":{"timeout":18446744073709552},"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["x"]}]}`
		if code, b := ts.post(t, "/v2/models/m3e/infer", body); code != http.StatusOK {
			t.Errorf("%d %s (before: 504 timed out after 15µs)", code, b)
		}
	})
	t.Run("no absolute paths in client errors", func(t *testing.T) {
		for _, p := range []string{"/v2/repository/models/nope/load", "/v2/repository/models/broken/load"} {
			code, b := ts.post(t, p, "")
			if code < 400 || strings.Contains(string(b), root) {
				t.Errorf("POST %s: %d %s", p, code, b)
			}
			t.Logf("POST %s: %d %s", p, code, b)
		}
		code, b := ts.post(t, "/v2/repository/index", "")
		if code != http.StatusOK || strings.Contains(string(b), root) {
			t.Errorf("index: %d %s", code, b)
		}
	})
	t.Run("503 for a model not loaded carries Retry-After", func(t *testing.T) {
		code, h, b := ts.do(t, "POST", "/v2/models/other/infer", []byte(inferBody("x")), nil)
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Errorf("%d %v %s", code, h, b)
		}
	})
	t.Run("no redirect for a path with ..", func(t *testing.T) {
		for _, p := range []string{"/v2/models/../health/live", "/v2//models/m3e", "/v2/models/m3e/./ready"} {
			c, err := net.Dial("tcp", ts.HTTPAddr())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			c.Close()
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("GET %s: %d %v", p, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("duplicate keys in a repository request", func(t *testing.T) {
		if code, b := ts.post(t, "/v2/repository/index", `{"ready":true,"ready":false}`); code != http.StatusBadRequest {
			t.Errorf("%d %s", code, b)
		}
	})
	t.Run("metric series persist across unload", func(t *testing.T) {
		count := func() float64 {
			mfs, _ := ts.registry.Gather()
			for _, mf := range mfs {
				if mf.GetName() != "nv_inference_count" {
					continue
				}
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "model" && l.GetValue() == "m3e" {
							return m.GetCounter().GetValue()
						}
					}
				}
			}
			return -1
		}
		before := count()
		if code, _ := ts.post(t, "/v2/models/m3e/infer", inferBody("计数")); code != http.StatusOK {
			t.Fatal(code)
		}
		if code, b := ts.post(t, "/v2/repository/models/m3e/unload", ""); code != http.StatusOK {
			t.Fatalf("unload: %d %s", code, b)
		}
		if c := count(); c != before+1 {
			t.Errorf("after unload nv_inference_count is %v, want %v (before: the series was dropped)", c, before+1)
		}
		if code, b := ts.post(t, "/v2/repository/models/m3e/load", ""); code != http.StatusOK {
			t.Fatalf("load: %d %s", code, b)
		}
		if code, _ := ts.post(t, "/v2/models/m3e/infer", inferBody("计数")); code != http.StatusOK {
			t.Fatal(code)
		}
		if c := count(); c != before+2 {
			t.Errorf("after reload and one more request: %v, want %v", c, before+2)
		}
	})
}
