// Tests of the Helm chart with Helm itself (helm.sh/helm/v3 as a library):
// lint, template for the CPU and GPU values and a few overrides, every
// rendered object decoded strictly with the Kubernetes API types, and the
// meaning checked against the real m3ectl binary (live_test.go).
package helm_test

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
)

// scenarios are the renderings the tests check, each with a golden manifest.
var scenarios = []scenario{
	{name: "cpu"},
	{name: "gpu", files: []string{"values-gpu.yaml"}},
	{name: "init-container-single-model-api-key", set: []string{
		"model.source=initContainer", "model.layout=single", "model.path=m3e-base", "model.name=m3e-base",
		"apiKey.existingSecret=m3ectl-api-key", "serve.threads=4", "serve.truncate=false", "serve.maxLength=256",
	}},
	{name: "explicit-mode-fixed-replicas-grpc-probe", set: []string{
		"serve.controlMode=explicit", "serve.loadModels={m3e-base-trt}", "autoscaling.enabled=false",
		"replicaCount=3", "serve.drainTimeoutSeconds=60", "terminationGracePeriodSeconds=90",
		"serve.maxBatchTokens=8192", "serviceMonitor.enabled=false", "podDisruptionBudget.enabled=false", "probes.grpc.enabled=true",
	}},
}

func TestLint(t *testing.T) {
	for _, files := range [][]string{nil, {"values-gpu.yaml"}} {
		vals := map[string]any{}
		for _, f := range files {
			v, err := chartutil.ReadValuesFile(chartDir + "/" + f)
			if err != nil {
				t.Fatal(err)
			}
			vals = v.AsMap()
		}
		lint := action.NewLint()
		lint.Strict = true
		lint.Namespace = "ml"
		res := lint.Run([]string{chartDir}, vals)
		for _, err := range res.Errors {
			t.Errorf("helm lint %v: %v", files, err)
		}
		for _, m := range res.Messages {
			if m.Severity > 1 { // above INFO: WARNING and ERROR fail a strict lint
				t.Errorf("helm lint %v: %s", files, m)
			}
		}
		if res.TotalChartsLinted != 1 {
			t.Errorf("helm lint %v linted %d charts, want 1", files, res.TotalChartsLinted)
		}
	}
}

// wantObjects is the rendered object list of each scenario, in Helm's
// install order.
var wantObjects = map[string][]string{
	"cpu": {"PodDisruptionBudget/embed-m3ectl", "ServiceAccount/embed-m3ectl", "ConfigMap/embed-m3ectl-prometheus-adapter-rules", "Service/embed-m3ectl",
		"Deployment/embed-m3ectl", "HorizontalPodAutoscaler/embed-m3ectl", "ServiceMonitor/embed-m3ectl"},
	"explicit-mode-fixed-replicas-grpc-probe": {"ServiceAccount/embed-m3ectl", "ConfigMap/embed-m3ectl-prometheus-adapter-rules",
		"Service/embed-m3ectl", "Deployment/embed-m3ectl"},
}

func TestTemplate(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			manifest, err := render(t, sc)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			golden(t, sc.name+".yaml", manifest)
			objs, err := decode(manifest)
			if err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			want := wantObjects[sc.name]
			if want == nil {
				want = wantObjects["cpu"]
			}
			if strings.Join(objs.order, " ") != strings.Join(want, " ") {
				t.Errorf("objects\n got %v\nwant %v", objs.order, want)
			}
			t.Logf("rendered: %s", strings.Join(objs.order, ", "))
			checkMeaning(t, sc, objs)
		})
	}
}

// TestTemplateRefuses pins the values the chart rejects with a message.
func TestTemplateRefuses(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"grace shorter than preStop + drain", []string{"terminationGracePeriodSeconds=35"}, "must exceed lifecycle.preStopSleepSeconds + serve.drainTimeoutSeconds (40)"},
		{"unknown image variant", []string{"image.variant=rocm"}, `image.variant must be cpu or cuda, not "rocm"`},
		{"unknown model source", []string{"model.source=s3"}, `model.source must be pvc or initContainer, not "s3"`},
		{"unknown model layout", []string{"model.layout=zip"}, `model.layout must be repository or single, not "zip"`},
		{"autoscaling without a metric", []string{"autoscaling.cpu.enabled=false", "autoscaling.queue.enabled=false"}, "needs autoscaling.cpu.enabled or autoscaling.queue.enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, scenario{set: tt.set})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestDecodeIsStrict proves the decoder fails on a field the API does not
// have, so that a typo in a template cannot pass.
func TestDecodeIsStrict(t *testing.T) {
	manifest, err := render(t, scenarios[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(manifest, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: true\n            readOnlyRootFileSystem: true", 1)
	if _, err := decode(bad); err == nil || !strings.Contains(err.Error(), "readOnlyRootFileSystem") {
		t.Fatalf("decode of a misspelt field: %v, want an unknown-field error", err)
	}
}
