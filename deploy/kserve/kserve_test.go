// Tests of the KServe resources: both validated against KServe's own CRD
// schemas (testdata, v0.20.0) with a JSON Schema validator, and the
// runtime's container run as KServe would run it, by the real m3ectl.
package kserve_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/m3ectl/m3ectl/deploy/internal/servetest"
)

const (
	runtimeCRD = "serving.kserve.io_servingruntimes.yaml.gz"
	isvcCRD    = "serving.kserve.io_inferenceservices.yaml.gz"
)

// servingRuntime is the part of KServe's ServingRuntime the tests read; the
// container is Kubernetes' own type, decoded strictly.
type servingRuntime struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Annotations           map[string]string `json:"annotations"`
		SupportedModelFormats []struct {
			Name       string `json:"name"`
			Version    string `json:"version"`
			AutoSelect *bool  `json:"autoSelect"`
			Priority   *int   `json:"priority"`
		} `json:"supportedModelFormats"`
		ProtocolVersions []string           `json:"protocolVersions"`
		MultiModel       bool               `json:"multiModel"`
		Containers       []corev1.Container `json:"containers"`
	} `json:"spec"`
}

type inferenceService struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Predictor struct {
			MinReplicas *int `json:"minReplicas"`
			MaxReplicas int  `json:"maxReplicas"`
			Model       struct {
				ModelFormat struct {
					Name    string `json:"name"`
					Version string `json:"version"`
				} `json:"modelFormat"`
				Runtime         string                      `json:"runtime"`
				ProtocolVersion string                      `json:"protocolVersion"`
				StorageURI      string                      `json:"storageUri"`
				Resources       corev1.ResourceRequirements `json:"resources"`
			} `json:"model"`
		} `json:"predictor"`
	} `json:"spec"`
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeStrict decodes YAML into v; unknown, misspelt or duplicate fields fail.
func decodeStrict(t *testing.T, doc []byte, v any) {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatal(err)
	}
	strict, err := kjson.UnmarshalStrict(js, v, kjson.DisallowUnknownFields)
	if err := errors.Join(append(strict, err)...); err != nil {
		t.Fatal(err)
	}
}

func TestSchemas(t *testing.T) {
	tests := []struct{ file, crd, version string }{
		{"servingruntime.yaml", runtimeCRD, "v1alpha1"},
		{"inferenceservice.yaml", isvcCRD, "v1beta1"},
		{"inferenceservice-triton.yaml", isvcCRD, "v1beta1"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if err := validate(crdSchema(t, tt.crd, tt.version), read(t, tt.file)); err != nil {
				t.Fatalf("%s against KServe's %s schema: %v", tt.file, tt.version, err)
			}
		})
	}
}

// TestSchemasReject proves the validation can fail: each change is one the
// API server refuses.
func TestSchemasReject(t *testing.T) {
	tests := []struct {
		name, file, crd, version, old, new string
	}{
		{"misspelt field", "servingruntime.yaml", runtimeCRD, "v1alpha1", "supportedModelFormats:", "supportedModelFormat:"},
		{"container field unknown to Kubernetes", "servingruntime.yaml", runtimeCRD, "v1alpha1", "      args:", "      arguments: []\n      args:"},
		{"priority not an integer", "servingruntime.yaml", runtimeCRD, "v1alpha1", "priority: 1", "priority: high"},
		{"unknown predictor field", "inferenceservice.yaml", isvcCRD, "v1beta1", "    minReplicas: 1", "    minReplica: 1"},
		{"maxReplicas a string", "inferenceservice.yaml", isvcCRD, "v1beta1", "maxReplicas: 4", "maxReplicas: four"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := string(read(t, tt.file))
			if !strings.Contains(doc, tt.old) {
				t.Fatalf("%s has no %q", tt.file, tt.old)
			}
			sch := crdSchema(t, tt.crd, tt.version)
			if err := validate(sch, []byte(strings.Replace(doc, tt.old, tt.new, 1))); err == nil {
				t.Fatalf("%s with %q accepted", tt.file, tt.new)
			}
		})
	}
}

func TestRuntimeAndServiceAgree(t *testing.T) {
	var rt servingRuntime
	decodeStrict(t, read(t, "servingruntime.yaml"), &rt)
	var isvc inferenceService
	decodeStrict(t, read(t, "inferenceservice.yaml"), &isvc)

	formats := map[string]bool{}
	for _, f := range rt.Spec.SupportedModelFormats {
		formats[f.Name+"/"+f.Version] = true
	}
	for _, want := range []string{"onnx/1", "m3ectl/1"} {
		if !formats[want] {
			t.Errorf("runtime does not support model format %s", want)
		}
	}
	for _, p := range []string{"v2", "grpc-v2"} {
		if !slices.Contains(rt.Spec.ProtocolVersions, p) {
			t.Errorf("runtime lacks protocol %s", p)
		}
	}
	m := isvc.Spec.Predictor.Model
	if m.Runtime != rt.Metadata.Name || !formats[m.ModelFormat.Name+"/"+m.ModelFormat.Version] ||
		!slices.Contains(rt.Spec.ProtocolVersions, m.ProtocolVersion) {
		t.Errorf("InferenceService asks for runtime %s, format %s/%s, protocol %s, which the runtime does not offer",
			m.Runtime, m.ModelFormat.Name, m.ModelFormat.Version, m.ProtocolVersion)
	}
	if m.StorageURI == "" {
		t.Error("InferenceService has no storageUri")
	}
	c := rt.Spec.Containers[0]
	if c.Name != "kserve-container" {
		t.Errorf("container %q: KServe injects the model into kserve-container", c.Name)
	}
	// KServe's storage initializer writes the model to /mnt/models.
	if !slices.Contains(c.Args, "--model=/mnt/models") {
		t.Errorf("args %v do not read /mnt/models", c.Args)
	}
	if rt.Spec.Annotations["prometheus.kserve.io/port"] != "8002" || !slices.Contains(c.Args, "--metrics-port=8002") {
		t.Errorf("the prometheus annotation and --metrics-port disagree")
	}
}

// TestRuntimeServes fills the container's placeholders as KServe's
// controller does (ReplacePlaceholders in
// pkg/controller/v1beta1/inferenceservice/utils/utils.go@v0.20.0: the
// container as JSON through text/template with the InferenceService's
// metadata), then runs its args with the real m3ectl, which parses them with
// its own flag set. Only the model's place (the storage initializer's work),
// the engine threads and the listen addresses are overridden.
func TestRuntimeServes(t *testing.T) {
	servetest.ORTLib(t)
	var rt servingRuntime
	decodeStrict(t, read(t, "servingruntime.yaml"), &rt)
	var isvc inferenceService
	decodeStrict(t, read(t, "inferenceservice.yaml"), &isvc)
	c := replacePlaceholders(t, rt.Spec.Containers[0], isvc.Metadata)
	if !slices.Contains(c.Args, "--name="+isvc.Metadata.Name) {
		t.Fatalf("args after substitution %v: want --name=%s", c.Args, isvc.Metadata.Name)
	}
	loop, httpPort, grpcPort, metricsPort := servetest.Loopback(t)
	args := append(append(append([]string{}, c.Args...), "--model="+filepath.Join(servetest.Root(), "testdata/m3e-tiny/hf"), "--threads=1"), loop...)
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name+"="+filepath.Join(t.TempDir(), e.Value))
	}
	srv := servetest.Start(t, servetest.Binary(t), args, env, httpPort, grpcPort, metricsPort)
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if !slices.Contains(c.Args, "--http-port="+p.HTTPGet.Port.String()) {
			t.Errorf("%s probe on port %s, not m3ectl's --http-port", name, p.HTTPGet.Port.String())
		}
		resp, err := http.Get(srv.URL() + p.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s probe %s: %d", name, p.HTTPGet.Path, resp.StatusCode)
		}
	}
	// KServe v2 clients address the model by the InferenceService's name.
	body := `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["酒店很好"]}],"outputs":[{"name":"embeddings"}]}`
	resp, err := http.Post(srv.URL()+"/v2/models/"+isvc.Metadata.Name+"/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("article request to /v2/models/%s/infer: %d", isvc.Metadata.Name, resp.StatusCode)
	}
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
}

func replacePlaceholders(t *testing.T, c corev1.Container, meta metav1.ObjectMeta) corev1.Container {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("container").Parse(string(data))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, meta); err != nil {
		t.Fatal(err)
	}
	var out corev1.Container
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}
