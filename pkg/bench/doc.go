// Package bench measures an embedding server under concurrency: the
// article's "N clients for 60 s, infer/s and p95" benchmark, done the way
// perf_analyzer does it.
//
// A level runs N closed-loop workers (each sends its next request when the
// previous one returns) or an open-loop Poisson arrival process (--rate), lets
// a warm-up pass, then counts only requests that complete inside the
// measurement window. Latencies are kept exactly and summarised by the
// nearest-rank rule; errors are classified and never mixed into latencies.
// Where the server offers Triton's statistics extension, the per-level deltas
// (mean batch size, queue and compute time per request) are read before and
// after each level.
//
// Time comes from a Clock so tests check the window and percentile arithmetic
// exactly; protocols (KServe v2 HTTP, KServe v2 gRPC, OpenAI embeddings) sit
// behind the Client interface with pre-encoded requests so that the client is
// never the bottleneck. Results render as a table, JSON, CSV and a chart, and
// SLO assertions (--assert) gate CI pipelines.
package bench
