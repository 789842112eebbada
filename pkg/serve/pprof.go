package serve

import (
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves Go's profiler (net/http/pprof) on its own listener,
// off unless Config.PprofAddr is set (`serve --pprof-addr 127.0.0.1:6060`),
// so that the server's CPU and allocation profiles can be taken under real
// load, e.g. `go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10`.
// It is never on the API port: profiles reveal the process's internals and
// a CPU profile costs the server while it runs. With an API key set the
// key is required here too.
func (s *Server) pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return s.withKey(mux)
}
