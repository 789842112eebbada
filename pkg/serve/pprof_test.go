package serve

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// TestPprofListener: the profiler answers on its own listener only, behind
// the API key when one is set, and is off by default.
func TestPprofListener(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 4, 0))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, serverOpts{
		repo: repository.Config{Root: root},
		cfg:  Config{APIKey: "s3cret", PprofListener: ln},
	})
	get := func(url, key string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pp := "http://" + ts.PprofAddr() + "/debug/pprof/"
	if code, body := get(pp+"cmdline", "s3cret"); code != http.StatusOK || body == "" {
		t.Errorf("cmdline with the key: %d %q", code, body)
	}
	if code, body := get(pp+"heap?debug=1", "s3cret"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap with the key: %d %.80q", code, body)
	}
	if code, _ := get(pp+"cmdline", ""); code != http.StatusUnauthorized {
		t.Errorf("without the key: %d, want 401", code)
	}
	if code, _ := get(ts.url+"/debug/pprof/cmdline", "s3cret"); code != http.StatusNotFound {
		t.Errorf("on the API port: %d, want 404", code)
	}

	off := startServer(t, serverOpts{repo: repository.Config{Root: root}})
	if off.PprofAddr() != "" {
		t.Errorf("profiler on by default at %s", off.PprofAddr())
	}
}
