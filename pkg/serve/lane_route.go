package serve

import (
	"net/http"
	"strings"
)

// The infer route's mux patterns (routes.go), as http.ServeMux sets
// r.Pattern for them.
const (
	inferPattern        = "POST /v2/models/{model}/infer"
	inferVersionPattern = "POST /v2/models/{model}/versions/{version}/infer"
)

// laneInferRoute runs infer for a POST to one of the infer patterns'
// paths, with r.Pattern and the path values set as http.ServeMux sets
// them, and every other request through next (canonical, then the mux).
// It sits where canonical does, under track and authenticate, so that it
// skips only canonical's path.Clean and the mux's lookup (cleanPath, a
// read lock on the mux, the routing tree), which cost 4–7% of the
// server's CPU per infer request on the H200: for the paths it takes
// both are no-ops, since the path is plain (no escapes, no query) and
// has no empty, "." or ".." segment. The lane's handler only: net/http's
// requests keep the mux alone.
func laneInferRoute(infer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.RawPath == "" {
			if model, version, ok := inferPath(r.URL.Path); ok {
				if version == "" {
					r.Pattern = inferPattern
				} else {
					r.Pattern = inferVersionPattern
					r.SetPathValue("version", version)
				}
				r.SetPathValue("model", model)
				infer.ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// inferPath splits p, when it is exactly /v2/models/{model}/infer or
// /v2/models/{model}/versions/{version}/infer with segments of plain
// characters that path.Clean keeps (not empty, ".", ".."), into its model
// and version ("" for the first form).
func inferPath(p string) (model, version string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/models/")
	if !ok || !plainPath(p) {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/infer")
	if !ok {
		return "", "", false
	}
	model, rest, versioned := strings.Cut(rest, "/")
	if versioned {
		if version, ok = strings.CutPrefix(rest, "versions/"); !ok || !cleanSegment(version) {
			return "", "", false
		}
	}
	if !cleanSegment(model) {
		return "", "", false
	}
	return model, version, true
}

// cleanSegment reports whether s is one path segment path.Clean keeps.
func cleanSegment(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.Contains(s, "/")
}
