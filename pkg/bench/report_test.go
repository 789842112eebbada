package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/bench")

const goldenDir = "../../testdata/bench"

// sampleResult is a fixed two-level run with server statistics and errors.
func sampleResult() *Result {
	return &Result{
		Label: "m3e-tiny cpu", URL: "http://127.0.0.1:8000", Model: "m3e-base-trt", Protocol: ProtoKServeHTTP,
		Mode: "closed", TextsPerRequest: 1, StartedAt: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC),
		Levels: []Level{
			{Concurrency: 1, Requests: 1200, DurationS: 10, Throughput: 120, TextsPerSecond: 120,
				Latency: Latency{P50: 8.1, P90: 8.9, P95: 9.4, P99: 11.2, Max: 15, Mean: 8.3}, Sent: 1330, Succeeded: 1330,
				Server: &ServerStats{Success: 1330, InferenceCount: 1330, ExecutionCount: 1330, MeanBatch: 1, RequestMs: 7.9, QueueMs: 0.1, ComputeInferMs: 7.5}},
			{Concurrency: 32, Requests: 4680, Errors: 3, ErrorsByKind: map[string]int{"http_503": 2, "timeout": 1}, DurationS: 10,
				Throughput: 468, TextsPerSecond: 468, Latency: Latency{P50: 66, P90: 70.5, P95: 72.25, P99: 80, Max: 120, Mean: 67},
				Sent: 5200, Succeeded: 5197,
				Server: &ServerStats{Success: 5197, Fail: 0, InferenceCount: 5197, ExecutionCount: 260, MeanBatch: 19.99, RequestMs: 60, QueueMs: 2.1, ComputeInferMs: 55}},
		},
		ClientCeiling: &Ceiling{Protocol: ProtoKServeHTTP, Concurrency: 32, Throughput: 15000, P50: 1.9, P99: 6},
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join(goldenDir, name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/bench -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func TestReportGoldens(t *testing.T) {
	cases := []struct {
		name  string
		write func(io.Writer, *Result) error
	}{
		{"result.json", WriteJSON},
		{"result.csv", WriteCSV},
		{"table.txt", WriteTable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := c.write(&buf, sampleResult()); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name, buf.Bytes())
		})
	}
}

func TestJSONSchemaRoundTrips(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleResult()); err != nil {
		t.Fatal(err)
	}
	// The agreed schema's field names.
	for _, key := range []string{`"label"`, `"url"`, `"model"`, `"protocol"`, `"levels"`, `"concurrency"`, `"requests"`,
		`"errors"`, `"duration_s"`, `"throughput"`, `"latency_ms"`, `"p50"`, `"p90"`, `"p95"`, `"p99"`, `"max"`, `"server"`,
		`"errors_by_kind"`, `"client_ceiling"`, `"mean_batch"`} {
		if !bytes.Contains(buf.Bytes(), []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadResult(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Levels[1].Latency.P95 != 72.25 || r.Levels[1].ErrorsByKind["http_503"] != 2 || r.Label != "m3e-tiny cpu" {
		t.Errorf("round trip lost data: %+v", r)
	}
	if err := os.WriteFile(p, []byte(`{"label":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResult(p); err == nil || !strings.Contains(err.Error(), "no levels") {
		t.Errorf("ReadResult of a non-bench file: %v", err)
	}
}

func TestChartFiles(t *testing.T) {
	other := sampleResult()
	other.Label = "pytorch"
	for i := range other.Levels {
		other.Levels[i].Throughput /= 2
		other.Levels[i].Latency.P95 *= 2
	}
	dir := t.TempDir()
	cases := []struct {
		name  string
		check func(t *testing.T, b []byte)
	}{
		{"chart.svg", func(t *testing.T, b []byte) {
			dec := xml.NewDecoder(bytes.NewReader(b))
			for {
				_, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("SVG does not parse as XML: %v", err)
				}
			}
			for _, want := range []string{"<svg", "Throughput", "p95 latency", "m3e-tiny cpu", "pytorch"} {
				if !bytes.Contains(b, []byte(want)) {
					t.Errorf("SVG lacks %q", want)
				}
			}
		}},
		{"chart.png", func(t *testing.T, b []byte) {
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("PNG does not decode: %v", err)
			}
			if r := img.Bounds(); r.Dx() < 600 || r.Dy() < 200 {
				t.Errorf("PNG is %v", r)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			if err := WriteChartFile(p, []*Result{sampleResult(), other}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, b)
		})
	}
	if err := WriteChartFile(filepath.Join(dir, "chart.gif"), []*Result{sampleResult()}); err == nil {
		t.Error("a .gif chart was accepted")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
