package serve

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler is the metrics listener's handler: /metrics and nothing
// else (404), behind the API key unless the key was waived for metrics
// (Config.MetricsNoAuth), as Triton's metrics port serves only /metrics.
func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	mux.Handle("/", s.api(func(w http.ResponseWriter, r *http.Request) error {
		return errorf(kindNotFound, "no endpoint %s %s on the metrics port; metrics are at GET /metrics", r.Method, r.URL.Path)
	}))
	if s.cfg.MetricsNoAuth {
		return mux
	}
	return s.withKey(mux)
}

// withKey puts a side listener's handler (metrics, profiler) behind the API
// key when one is set; the API port has its own check per route, which
// leaves the health endpoints open.
func (s *Server) withKey(h http.Handler) http.Handler {
	if s.cfg.APIKey == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkBearer(r.Header.Get("Authorization"), s.cfg.APIKey); err != nil {
			writeError(w, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}
