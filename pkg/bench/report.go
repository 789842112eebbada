package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the --json document.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadResult reads a result written by --json (a --compare input).
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(r.Levels) == 0 {
		return nil, fmt.Errorf("%s: no levels (not an m3ectl bench --json file?)", path)
	}
	return &r, nil
}

// csvHeader is the column order of WriteCSV.
var csvHeader = []string{
	"label", "protocol", "concurrency", "rate", "requests", "errors", "duration_s", "throughput", "texts_per_s",
	"p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms",
	"server_mean_batch", "server_queue_ms", "server_compute_infer_ms", "server_request_ms", "errors_by_kind",
}

// WriteCSV writes one row per level.
func WriteCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, lv := range r.Levels {
		row := []string{
			r.Label, r.Protocol, strconv.Itoa(lv.Concurrency), f(lv.Rate),
			strconv.Itoa(lv.Requests), strconv.Itoa(lv.Errors), f(lv.DurationS), f(lv.Throughput), f(lv.TextsPerSecond),
			f(lv.Latency.P50), f(lv.Latency.P90), f(lv.Latency.P95), f(lv.Latency.P99), f(lv.Latency.Max), f(lv.Latency.Mean),
		}
		if s := lv.Server; s != nil {
			row = append(row, f(s.MeanBatch), f(s.QueueMs), f(s.ComputeInferMs), f(s.RequestMs))
		} else {
			row = append(row, "", "", "", "")
		}
		row = append(row, kinds(lv.ErrorsByKind))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// kinds renders errors_by_kind as "http_503=4 timeout=1", sorted.
func kinds(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// WriteTable prints the article's table: concurrency, infer/s, p50, p95,
// p99, errors, mean batch, plus the server's queue and compute split when
// offered.
func WriteTable(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	title := r.Label
	if title == "" {
		title = r.URL
	}
	fmt.Fprintf(w, "%s  model=%s  protocol=%s  texts/request=%d\n", title, r.Model, r.Protocol, r.TextsPerRequest)
	first := "concurrency"
	if r.Mode == "open" {
		first = "rate/s"
	}
	fmt.Fprintf(tw, "%s\tinfer/s\tp50 ms\tp90 ms\tp95 ms\tp99 ms\tmax ms\terrors\tmean batch\tqueue ms\tcompute ms\t\n", first)
	for _, lv := range r.Levels {
		lead := strconv.Itoa(lv.Concurrency)
		if r.Mode == "open" {
			lead = strconv.FormatFloat(lv.Rate, 'g', -1, 64)
		}
		if lv.Partial {
			lead += " (partial)"
		}
		batch, queue, compute := "-", "-", "-"
		if s := lv.Server; s != nil {
			batch = fmt.Sprintf("%.2f", s.MeanBatch)
			queue = fmt.Sprintf("%.2f", s.QueueMs)
			compute = fmt.Sprintf("%.2f", s.ComputeInferMs)
		}
		errs := strconv.Itoa(lv.Errors)
		if lv.Errors > 0 {
			errs += " (" + kinds(lv.ErrorsByKind) + ")"
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t\n",
			lead, lv.Throughput, lv.Latency.P50, lv.Latency.P90, lv.Latency.P95, lv.Latency.P99, lv.Latency.Max,
			errs, batch, queue, compute)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c := r.ClientCeiling; c != nil {
		fmt.Fprintf(w, "client ceiling (%s, c=%d, in-process canned server): %.0f req/s, p50 %.3f ms\n",
			c.Protocol, c.Concurrency, c.Throughput, c.P50)
	}
	return nil
}
