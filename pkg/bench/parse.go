package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxConcurrency bounds one level's workers; beyond it the client would
// measure itself rather than the server.
const MaxConcurrency = 4096

// ParseConcurrency reads a -c list: "32" or "1,2,4,16,32". Values must be
// positive, at most MaxConcurrency, and distinct; order is kept.
func ParseConcurrency(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	out := make([]int, 0, len(parts))
	seen := map[int]bool{}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("concurrency %q: empty value", s)
		}
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("concurrency %q: %q is not a whole number", s, p)
		}
		if v < 1 || v > MaxConcurrency {
			return nil, fmt.Errorf("concurrency %q: %d is outside 1..%d", s, v, MaxConcurrency)
		}
		if seen[v] {
			return nil, fmt.Errorf("concurrency %q: %d repeated", s, v)
		}
		seen[v] = true
		out = append(out, v)
	}
	return out, nil
}

// ParseRates reads a --rate list of open-loop arrival rates (requests/s):
// "200" or "100,200,400".
func ParseRates(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || v > 1e7 {
			return nil, fmt.Errorf("rate %q: %q is not a rate in (0, 1e7] requests/s", s, p)
		}
		out = append(out, v)
	}
	return out, nil
}

// Assertion is one --assert condition, such as p95<50ms.
type Assertion struct {
	Metric string // p50 p90 p95 p99 max mean | throughput | errors | error_rate | mean_batch
	Op     string // < <= > >= = !=
	Value  float64
	// Text is the condition as written, for messages.
	Text string
}

var latencyMetrics = map[string]func(Latency) float64{
	"p50": func(l Latency) float64 { return l.P50 }, "p90": func(l Latency) float64 { return l.P90 },
	"p95": func(l Latency) float64 { return l.P95 }, "p99": func(l Latency) float64 { return l.P99 },
	"max": func(l Latency) float64 { return l.Max }, "mean": func(l Latency) float64 { return l.Mean },
}

var plainMetrics = map[string]bool{"throughput": true, "errors": true, "error_rate": true, "mean_batch": true}

// ParseAssertions reads "p95<50ms,throughput>200,errors=0". Latency metrics
// (p50 p90 p95 p99 max mean) take a duration (a bare number is
// milliseconds); throughput is requests/s, errors a count, error_rate a
// fraction, mean_batch the server's mean batch size.
func ParseAssertions(s string) ([]Assertion, error) {
	var out []Assertion
	for _, raw := range strings.Split(s, ",") {
		c := strings.TrimSpace(raw)
		if c == "" {
			continue
		}
		a, err := parseAssertion(c)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("assert %q: no conditions", s)
	}
	return out, nil
}

func parseAssertion(c string) (Assertion, error) {
	i := strings.IndexAny(c, "<>=!")
	if i <= 0 {
		return Assertion{}, fmt.Errorf("assert %q: want METRIC<VALUE, METRIC>VALUE or METRIC=VALUE", c)
	}
	metric := strings.ToLower(strings.TrimSpace(c[:i]))
	rest := c[i:]
	op := ""
	for _, o := range []string{"<=", ">=", "==", "!=", "<", ">", "="} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" {
		return Assertion{}, fmt.Errorf("assert %q: unknown operator", c)
	}
	val := strings.TrimSpace(rest[len(op):])
	if op == "==" {
		op = "="
	}
	a := Assertion{Metric: metric, Op: op, Text: c}
	switch {
	case latencyMetrics[metric] != nil:
		v, err := parseMillis(val)
		if err != nil {
			return Assertion{}, fmt.Errorf("assert %q: %w", c, err)
		}
		a.Value = v
	case plainMetrics[metric]:
		v, err := strconv.ParseFloat(strings.TrimSuffix(val, "/s"), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Assertion{}, fmt.Errorf("assert %q: %q is not a number", c, val)
		}
		a.Value = v
	default:
		return Assertion{}, fmt.Errorf("assert %q: unknown metric %q (want p50, p90, p95, p99, max, mean, throughput, errors, error_rate, mean_batch)", c, metric)
	}
	return a, nil
}

// parseMillis reads "50ms", "0.5s", "800us" or a bare number of milliseconds.
func parseMillis(s string) (float64, error) {
	if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
		return v, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	return ms(d), nil
}

// value returns the level's figure for the assertion's metric; ok is false
// when the level lacks it (mean_batch without server statistics).
func (a Assertion) value(lv Level) (v float64, ok bool) {
	if f := latencyMetrics[a.Metric]; f != nil {
		return f(lv.Latency), true
	}
	switch a.Metric {
	case "throughput":
		return lv.Throughput, true
	case "errors":
		return float64(lv.Errors), true
	case "error_rate":
		if n := lv.Requests + lv.Errors; n > 0 {
			return float64(lv.Errors) / float64(n), true
		}
		return 0, true
	case "mean_batch":
		if lv.Server == nil {
			return 0, false
		}
		return lv.Server.MeanBatch, true
	}
	return 0, false
}

// unit is how a measured value of the metric is printed.
func (a Assertion) unit() string {
	switch {
	case latencyMetrics[a.Metric] != nil:
		return "ms"
	case a.Metric == "throughput":
		return "/s"
	}
	return ""
}

func (a Assertion) holds(v float64) bool {
	switch a.Op {
	case "<":
		return v < a.Value
	case "<=":
		return v <= a.Value
	case ">":
		return v > a.Value
	case ">=":
		return v >= a.Value
	case "=":
		return v == a.Value
	case "!=":
		return v != a.Value
	}
	return false
}

// Check tests every assertion at every level and returns an
// *AssertionError naming each failed condition and level, or nil.
func Check(res *Result, as []Assertion) error {
	var failed []string
	for _, lv := range res.Levels {
		for _, a := range as {
			v, ok := a.value(lv)
			name := levelName(lv.Concurrency, lv.Rate)
			switch {
			case !ok:
				failed = append(failed, fmt.Sprintf("%s at %s: the server reported no statistics", a.Text, name))
			case !a.holds(v):
				failed = append(failed, fmt.Sprintf("%s at %s: measured %s%s", a.Text, name, strconv.FormatFloat(v, 'g', 4, 64), a.unit()))
			}
		}
	}
	if len(failed) > 0 {
		return &AssertionError{Failed: failed}
	}
	return nil
}
