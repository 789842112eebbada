package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"
)

// Options are the `m3ectl bench` flags, parsed into values; Execute does
// the work so the command layer stays flags and wiring.
type Options struct {
	URL             string
	Model           string
	Version         string
	Protocol        string
	Concurrency     string // -c list
	Rate            string // --rate list (open loop)
	Duration        time.Duration
	Warmup          time.Duration
	Stable          bool
	Window          time.Duration
	MaxWindows      int
	Timeout         time.Duration
	TextsPerRequest int
	Data            string
	InputName       string
	Label           string
	JSON            string // file, or "-" for stdout instead of the table
	CSV             string
	Chart           string
	Compare         []string
	Assert          string
	SelfTest        bool   // measure the client's ceiling against a canned in-process server only
	BinaryOutput    bool   // kserve-http: ask for binary_data_output
	From            string // report a saved --json result instead of running
	Ceiling         bool   // also measure the ceiling before the run
	NoStats         bool
	Seed            uint64
	Progress        *Progress
	Logger          *slog.Logger
}

// Execute runs the benchmark described by o, writes the table (or JSON) to
// stdout and the requested files, and returns an *AssertionError when an
// --assert condition fails.
func Execute(ctx context.Context, o Options, stdout io.Writer) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// Validate everything cheap before the first request.
	levels, err := ParseConcurrency(o.Concurrency)
	if err != nil {
		return err
	}
	var rates []float64
	if o.Rate != "" {
		if rates, err = ParseRates(o.Rate); err != nil {
			return err
		}
	}
	var asserts []Assertion
	if o.Assert != "" {
		if asserts, err = ParseAssertions(o.Assert); err != nil {
			return err
		}
	}
	if o.Chart != "" {
		if ext := strings.ToLower(o.Chart); !strings.HasSuffix(ext, ".svg") && !strings.HasSuffix(ext, ".png") {
			return fmt.Errorf("--chart %s: want a .svg or .png file", o.Chart)
		}
	}
	var compares []*Result
	for _, p := range o.Compare {
		r, err := ReadResult(p)
		if err != nil {
			return fmt.Errorf("--compare: %w", err)
		}
		compares = append(compares, r)
	}
	texts := DefaultTexts
	if o.Data != "" {
		if texts, err = LoadTexts(o.Data); err != nil {
			return err
		}
	}
	if o.TextsPerRequest < 1 {
		return fmt.Errorf("--texts-per-request must be at least 1, got %d", o.TextsPerRequest)
	}
	groups := Groups(texts, o.TextsPerRequest)
	o.Protocol = strings.ToLower(o.Protocol)
	if o.Protocol == "" {
		o.Protocol = ProtoKServeHTTP
	}
	maxConc := 0
	for _, c := range levels {
		maxConc = max(maxConc, c)
	}

	var res *Result
	switch {
	case o.From != "":
		res, err = ReadResult(o.From)
		if err == nil && o.Label != "" {
			res.Label = o.Label // --label renames a saved run in the table and chart
		}
	case o.SelfTest:
		res, err = selfTest(ctx, o, levels, groups)
	default:
		res, err = o.measure(ctx, levels, rates, maxConc, groups)
	}
	if errors.Is(err, ErrInterrupted) && res != nil {
		// Print and write what was measured, then report the interruption
		// (exit non-zero); assertions are not checked on a partial run.
		if rerr := o.report(res, compares, nil, stdout); rerr != nil {
			return rerr
		}
		return err
	}
	if err != nil {
		return err
	}
	return o.report(res, compares, asserts, stdout)
}

func (o Options) measure(ctx context.Context, levels []int, rates []float64, maxConc int, groups [][]string) (*Result, error) {
	if o.URL == "" {
		o.URL = "http://127.0.0.1:8000"
		if o.Protocol == ProtoKServeGRPC {
			o.URL = "127.0.0.1:8001"
		}
	}
	if o.Model == "" {
		m, err := DiscoverModel(ctx, o.Protocol, o.URL)
		if err != nil {
			return nil, fmt.Errorf("--model not given and %w", err)
		}
		o.Logger.Info("benchmarking the server's only model", "model", m)
		o.Model = m
	}
	cl, err := NewClient(o.Protocol, ClientOptions{URL: o.URL, Model: o.Model, Version: o.Version,
		InputName: o.InputName, Groups: groups, MaxConns: maxConc, BinaryOutput: o.BinaryOutput})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// One probe request: a wrong URL, model or input name fails here with
	// the server's own words instead of as a table full of errors.
	pctx, cancel := context.WithTimeout(ctx, max(o.Timeout, 30*time.Second))
	err = cl.Do(pctx, 0)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("probe request to %s (model %s, %s): %w", o.URL, o.Model, o.Protocol, err)
	}
	var ceiling *Ceiling
	if o.Ceiling {
		if ceiling, _, err = MeasureCeiling(ctx, o.Protocol, maxConc, 3*time.Second, groups, nil); err != nil {
			return nil, fmt.Errorf("client ceiling: %w", err)
		}
	}
	cfg := Config{
		Label: o.Label, URL: o.URL, Model: o.Model, Protocol: o.Protocol,
		Concurrency: levels, Rates: rates, Warmup: o.Warmup, Duration: o.Duration,
		Stable: o.Stable, Window: o.Window, MaxWindows: o.MaxWindows, Timeout: o.Timeout,
		TextsPerRequest: o.TextsPerRequest, Seed: o.Seed, Client: cl, Progress: o.Progress, Logger: o.Logger,
	}
	if !o.NoStats {
		switch o.Protocol {
		case ProtoKServeGRPC:
			gs, err := NewGRPCStats(o.URL, o.Model, o.Version)
			if err == nil {
				defer gs.Close()
				cfg.Stats = gs
			}
		default:
			// m3ectl serve and Triton answer the statistics extension on the
			// same port as the OpenAI routes; other OpenAI servers do not, and
			// the first failed snapshot just leaves the server columns empty.
			cfg.Stats = &HTTPStats{Client: &http.Client{Timeout: 10 * time.Second}, URL: strings.TrimSuffix(strings.TrimRight(o.URL, "/"), "/v1"), Model: o.Model, Version: o.Version}
		}
	}
	res, err := Run(ctx, cfg)
	if res != nil {
		res.ClientCeiling = ceiling
	}
	if errors.Is(err, ErrInterrupted) {
		return res, err
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// selfTest benchmarks a canned in-process server at every level: the
// client's own ceiling.
func selfTest(ctx context.Context, o Options, levels []int, groups [][]string) (*Result, error) {
	res := &Result{Label: "client ceiling (self-test)", URL: "in-process", Model: "canned", Protocol: o.Protocol,
		Mode: "closed", TextsPerRequest: o.TextsPerRequest, StartedAt: time.Now().UTC()}
	for _, c := range levels {
		ce, lv, err := MeasureCeiling(ctx, o.Protocol, c, o.Duration, groups, o.Progress)
		if err != nil {
			return nil, fmt.Errorf("self-test at c=%d: %w", c, err)
		}
		lv.TextsPerSecond = lv.Throughput * float64(o.TextsPerRequest)
		res.Levels = append(res.Levels, lv)
		if res.ClientCeiling == nil || ce.Throughput > res.ClientCeiling.Throughput {
			res.ClientCeiling = ce
		}
	}
	return res, nil
}

// report writes the table or JSON to stdout, the files, and checks the
// assertions last so that a failed gate still leaves its evidence.
func (o Options) report(res *Result, compares []*Result, asserts []Assertion, stdout io.Writer) error {
	if o.JSON == "-" {
		if err := WriteJSON(stdout, res); err != nil {
			return err
		}
	} else if err := WriteTable(stdout, res); err != nil {
		return err
	}
	for _, c := range compares {
		fmt.Fprintln(stdout)
		if err := WriteTable(stdout, c); err != nil {
			return err
		}
	}
	if o.JSON != "" && o.JSON != "-" {
		if err := writeFile(o.JSON, func(w io.Writer) error { return WriteJSON(w, res) }); err != nil {
			return err
		}
	}
	if o.CSV != "" {
		if err := writeFile(o.CSV, func(w io.Writer) error { return WriteCSV(w, res) }); err != nil {
			return err
		}
	}
	if o.Chart != "" {
		if err := WriteChartFile(o.Chart, append([]*Result{res}, compares...)); err != nil {
			return err
		}
	}
	if len(asserts) > 0 {
		return Check(res, asserts)
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// DiscoverModel finds the model to benchmark when --model is not given:
// the only ready model in the server's repository index (KServe) or model
// list (OpenAI).
func DiscoverModel(ctx context.Context, protocol, url string) (string, error) {
	if protocol == ProtoKServeGRPC {
		return "", errors.New("model discovery needs the HTTP protocols; pass --model")
	}
	base := strings.TrimSuffix(strings.TrimRight(url, "/"), "/v1")
	hc := &http.Client{Timeout: 10 * time.Second}
	var names []string
	if protocol == ProtoOpenAI {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/models", nil)
		var doc struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := getJSON(hc, req, &doc); err != nil {
			return "", err
		}
		for _, d := range doc.Data {
			names = append(names, d.ID)
		}
	} else {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/repository/index", strings.NewReader(`{"ready":true}`))
		var doc []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		if err := getJSON(hc, req, &doc); err != nil {
			return "", err
		}
		seen := map[string]bool{}
		for _, d := range doc {
			if (d.State == "" || d.State == "READY") && !seen[d.Name] {
				seen[d.Name] = true
				names = append(names, d.Name)
			}
		}
	}
	if len(names) != 1 {
		return "", fmt.Errorf("the server lists %d models (%s); pass --model", len(names), strings.Join(names, ", "))
	}
	return names[0], nil
}

func getJSON(hc *http.Client, req *http.Request, v any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot list the server's models: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d", req.Method, req.URL, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	return nil
}
