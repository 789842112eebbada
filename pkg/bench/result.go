package bench

import "time"

// Result is one benchmark run: the --json document.
type Result struct {
	Label           string    `json:"label"`
	URL             string    `json:"url"`
	Model           string    `json:"model"`
	Protocol        string    `json:"protocol"`
	Mode            string    `json:"mode"` // "closed" (N workers) or "open" (Poisson arrivals at a rate)
	TextsPerRequest int       `json:"texts_per_request"`
	StartedAt       time.Time `json:"started_at"`
	Levels          []Level   `json:"levels"`
	// ClientCeiling is the client's own ceiling against a trivial in-process
	// server, when it was measured (--self-test or --ceiling).
	ClientCeiling *Ceiling `json:"client_ceiling,omitempty"`
}

// Level is what one concurrency level (or one open-loop rate) measured.
type Level struct {
	Concurrency int `json:"concurrency"`
	// Rate is the open-loop arrival rate in requests/s; 0 in closed loop.
	Rate float64 `json:"rate,omitempty"`
	// Requests is the number of successful requests that completed inside
	// the measurement window.
	Requests int `json:"requests"`
	// Errors is the number of failed requests that completed inside the window.
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind,omitempty"`
	// DurationS is the measurement window in seconds (three windows with --stable).
	DurationS float64 `json:"duration_s"`
	// Throughput is Requests / DurationS (infer/s, the article's figure).
	Throughput float64 `json:"throughput"`
	// TextsPerSecond is Throughput × texts per request.
	TextsPerSecond float64 `json:"texts_per_s"`
	Latency        Latency `json:"latency_ms"`
	// Windows and Stable are set with --stable: how many windows ran and
	// whether the last three agreed within the threshold.
	Windows int   `json:"windows,omitempty"`
	Stable  *bool `json:"stable,omitempty"`
	// Sent and Succeeded count every request of the level, warm-up and the
	// tail after the window included: what the server's counters see.
	Sent      int `json:"sent"`
	Succeeded int `json:"succeeded"`
	// Server holds the server-side deltas over the level, when offered.
	Server *ServerStats `json:"server,omitempty"`
	// Partial marks the level that was running when the benchmark was
	// interrupted: its figures cover the window up to the interruption.
	Partial bool `json:"partial,omitempty"`
}

// Ceiling is the client's own throughput limit: the bench against an
// in-process server that answers a canned response at once.
type Ceiling struct {
	Protocol    string  `json:"protocol"`
	Concurrency int     `json:"concurrency"`
	Throughput  float64 `json:"throughput"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
}
