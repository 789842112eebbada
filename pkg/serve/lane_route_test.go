package serve

import (
	"net/http"
	"net/http/httptest"
	"path"
	"testing"
)

// inferRouteCheck checks the lane's infer route against the server's own
// mux for a POST to p: it takes p exactly when the mux would route it to
// the infer handler and canonical would let it through, with the pattern
// and path values the mux sets.
func inferRouteCheck(t *testing.T, mux *http.ServeMux, p string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, p, nil)
	if req.URL.RawPath != "" || !plainPath(req.URL.Path) {
		return // not a path the lane serves
	}
	_, pattern := mux.Handler(req)
	want := path.Clean(p) == p && (pattern == inferPattern || pattern == inferVersionPattern)

	// The path values as the mux sets them, from a mux of the two patterns.
	var wantPat, wantModel, wantVersion string
	ref := http.NewServeMux()
	record := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		wantPat, wantModel, wantVersion = r.Pattern, r.PathValue("model"), r.PathValue("version")
	})
	ref.Handle(inferPattern, record)
	ref.Handle(inferVersionPattern, record)
	ref.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, p, nil))

	var took bool
	var gotPat, gotModel, gotVersion string
	route := laneInferRoute(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		took = true
		gotPat, gotModel, gotVersion = r.Pattern, r.PathValue("model"), r.PathValue("version")
	}), http.NotFoundHandler())
	route.ServeHTTP(httptest.NewRecorder(), req)
	if took != want {
		t.Fatalf("POST %q: lane route took it %v, the mux routes it to %q (canonical %v)", p, took, pattern, path.Clean(p) == p)
	}
	if took && (gotPat != pattern || gotPat != wantPat || gotModel != wantModel || gotVersion != wantVersion) {
		t.Fatalf("POST %q: pattern %q model %q version %q; the mux: %q (%q) %q %q", p, gotPat, gotModel, gotVersion, pattern, wantPat, wantModel, wantVersion)
	}
}

// TestLaneInferRouteAsMux pins the infer route to the mux's decision on
// the paths around the infer patterns.
func TestLaneInferRouteAsMux(t *testing.T) {
	s := &Server{}
	s.routes()
	for _, p := range []string{
		"/v2/models/m3e/infer",
		"/v2/models/m3e/versions/1/infer",
		"/v2/models/m3e-base_v1.2~x/versions/007/infer",
		"/v2/models/versions/versions/versions/infer",
		"/v2/models/infer/infer",
		"/v2/models/.../infer",
		"/v2/models/.x/versions/x./infer",
		"/v2/models/stats/infer",
		"/v2/models/./infer",
		"/v2/models/../infer",
		"/v2/models//infer",
		"/v2/models/m3e/versions//infer",
		"/v2/models/m3e/versions/./infer",
		"/v2/models/m3e/versions/../infer",
		"/v2/models/m3e/infer/",
		"/v2/models/m3e/infer/x",
		"/v2/models/m3e/x/infer",
		"/v2/models/m3e/versions/1/2/infer",
		"/v2/models/m3e/version/1/infer",
		"/v2/models/infer",
		"/v2/models/m3e/inference",
		"/v2//models/m3e/infer",
		"/v2/models/m3e//infer",
		"/v2/repository/models/m3e/load",
		"/v1/embeddings",
		"/v2/models/m3e/x%2Fy/infer",
		"/v2/models/a%20b/infer",
	} {
		inferRouteCheck(t, s.mux, p)
	}
}

// FuzzLaneInferRoute checks the infer route against the mux on any plain
// path.
func FuzzLaneInferRoute(f *testing.F) {
	for _, p := range []string{"/v2/models/m3e/infer", "/v2/models/m3e/versions/1/infer", "/v2/models/./infer", "/v2/models/m3e/versions//infer"} {
		f.Add(p)
	}
	s := &Server{}
	s.routes()
	f.Fuzz(func(t *testing.T, p string) {
		if len(p) == 0 || p[0] != '/' || !plainPath(p) {
			return
		}
		inferRouteCheck(t, s.mux, p)
	})
}
