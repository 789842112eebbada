package serve

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
)

// dashboardQueries returns every PromQL expression of Triton's own Grafana
// dashboard (testdata/triton/grafana/dashboard.json).
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/triton/grafana/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr != "" {
				out = append(out, tg.Expr)
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(out))
	}
	return out
}

var (
	metricName = regexp.MustCompile(`\bnv_[a-z_]+\b`)
	byClause   = regexp.MustCompile(`\bby \(([a-z_, ]+)\)`)
	rateOf     = regexp.MustCompile(`\brate\((nv_[a-z_]+)\[`)
)

// targetLabels are added by Prometheus to every scraped series (instance)
// or by the Kubernetes service discovery the dashboard is written for (pod),
// not by the server.
var targetLabels = map[string]bool{"instance": true, "pod": true, "job": true}

// TestTritonDashboardQueries: every query of Triton's Grafana dashboard
// finds its metrics, with the labels it groups by and the type rate()
// needs, on a real server's metrics endpoint after real traffic.
func TestTritonDashboardQueries(t *testing.T) {
	ts := startRepoServer(t, 4, 1000, Config{})
	if err := ts.registry.Register(metrics.NewCPUCollector("")); err != nil {
		t.Fatal(err)
	}
	gpu, gpuErr := metrics.NewGPUCollector()
	if gpuErr == nil {
		ts.registry.MustRegister(gpu)
	}
	if code, b := ts.post(t, "/v2/models/m3e/infer", inferBody("酒店很好")); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	// A token id outside the vocabulary reaches the batcher and fails there.
	if code, _ := ts.post(t, "/v1/embeddings", `{"model":"m3e","input":[[99999999]]}`); code != 400 {
		t.Fatalf("bad token id: %d", code)
	}
	resp, err := http.Get("http://" + ts.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range dashboardQueries(t) {
		t.Run(q, func(t *testing.T) {
			for _, name := range metricName.FindAllString(q, -1) {
				f, ok := fams[name]
				if !ok || len(f.GetMetric()) == 0 {
					if strings.HasPrefix(name, "nv_gpu_") && gpuErr != nil {
						t.Skipf("%s needs NVML, absent here: %v", name, gpuErr)
					}
					t.Fatalf("no series of %s", name)
				}
				for _, m := range byClause.FindAllStringSubmatch(q, -1) {
					for _, l := range strings.Split(m[1], ",") {
						l = strings.TrimSpace(l)
						if !targetLabels[l] && !hasLabel(f, l) {
							t.Errorf("%s has no label %q the query groups by", name, l)
						}
					}
				}
			}
			for _, m := range rateOf.FindAllStringSubmatch(q, -1) {
				if fams[m[1]].GetType() != dto.MetricType_COUNTER {
					t.Errorf("rate(%s) needs a counter, the server exports a %v", m[1], fams[m[1]].GetType())
				}
			}
		})
	}
	// The failure counter carries Triton's reason label; the invalid request
	// is OTHER.
	var other float64
	for _, m := range fams["nv_inference_request_failure"].GetMetric() {
		if labelValue(m, "reason") == "" {
			t.Fatalf("nv_inference_request_failure without reason: %v", m)
		}
		if labelValue(m, "reason") == "OTHER" {
			other += m.GetCounter().GetValue()
		}
	}
	if other != 1 {
		t.Errorf("OTHER failures = %v, want 1", other)
	}
	if u := fams["nv_cpu_utilization"].GetMetric()[0].GetGauge().GetValue(); u < 0 || u > 1 {
		t.Errorf("nv_cpu_utilization %v outside [0, 1]", u)
	}
}

func hasLabel(f *dto.MetricFamily, name string) bool {
	for _, m := range f.GetMetric() {
		if labelValue(m, name) == "" {
			return false
		}
	}
	return true
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
