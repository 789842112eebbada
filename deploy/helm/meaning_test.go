package helm_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// adapterConfig mirrors prometheus-adapter's MetricsDiscoveryConfig
// (kubernetes-sigs/prometheus-adapter pkg/config/config.go), decoded
// strictly so that a misspelt rule field fails here and not in the cluster.
type adapterConfig struct {
	Rules         []adapterRule `json:"rules"`
	ExternalRules []adapterRule `json:"externalRules,omitempty"`
}

type adapterRule struct {
	SeriesQuery   string `json:"seriesQuery"`
	SeriesFilters []struct {
		Is    string `json:"is,omitempty"`
		IsNot string `json:"isNot,omitempty"`
	} `json:"seriesFilters,omitempty"`
	Resources struct {
		Template  string `json:"template,omitempty"`
		Overrides map[string]struct {
			Group    string `json:"group,omitempty"`
			Resource string `json:"resource"`
		} `json:"overrides,omitempty"`
		Namespaced *bool `json:"namespaced,omitempty"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

// m3ectlContainer returns the Deployment's m3ectl container.
func m3ectlContainer(t *testing.T, o *objects) *corev1.Container {
	t.Helper()
	if o.deployment == nil {
		t.Fatal("no Deployment rendered")
	}
	for i, c := range o.deployment.Spec.Template.Spec.Containers {
		if c.Name == "m3ectl" {
			return &o.deployment.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatal("no m3ectl container")
	return nil
}

// flagValue returns the value of --name=value in args ("" if absent).
func flagValue(args []string, name string) string {
	v := ""
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = s
		}
	}
	return v
}

// checkMeaning checks what the objects mean together; the checks against
// the running server are in checkLive.
func checkMeaning(t *testing.T, sc scenario, o *objects) {
	dep := o.deployment
	pod := dep.Spec.Template
	c := m3ectlContainer(t, o)

	// Selectors: the Deployment's, the Service's and the PDB's pick the pods.
	podLabels := labels.Set(pod.Labels)
	if !labels.SelectorFromSet(dep.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match its pods %v", dep.Spec.Selector.MatchLabels, pod.Labels)
	}
	if !labels.SelectorFromSet(o.service.Spec.Selector).Matches(podLabels) {
		t.Errorf("Service selector %v does not match the pods", o.service.Spec.Selector)
	}
	if o.pdb != nil && !labels.SelectorFromSet(o.pdb.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("PDB selector does not match the pods")
	}

	// Every Service port targets a named container port.
	cports := map[string]int32{}
	for _, p := range c.Ports {
		cports[p.Name] = p.ContainerPort
	}
	for _, p := range o.service.Spec.Ports {
		if _, ok := cports[p.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %q, which the container does not name", p.Name, p.TargetPort.String())
		}
	}
	// The container ports are the ones m3ectl is told to listen on.
	for name, flag := range map[string]string{"http": "http-port", "grpc": "grpc-port", "metrics": "metrics-port"} {
		if got := flagValue(c.Args, flag); got != strconv.Itoa(int(cports[name])) {
			t.Errorf("containerPort %s is %d but the args say --%s=%s", name, cports[name], flag, got)
		}
	}
	// Probes name ports the container has.
	for kind, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil {
			t.Errorf("no %s probe", kind)
			continue
		}
		if p.HTTPGet != nil {
			if _, ok := cports[p.HTTPGet.Port.String()]; !ok {
				t.Errorf("%s probe port %q is not a container port", kind, p.HTTPGet.Port.String())
			}
		}
		if p.GRPC != nil && p.GRPC.Port != cports["grpc"] {
			t.Errorf("%s gRPC probe on %d, the gRPC port is %d", kind, p.GRPC.Port, cports["grpc"])
		}
	}

	// Shutdown: the grace period covers preStop's sleep and the drain.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no preStop exec hook")
	}
	cmd := c.Lifecycle.PreStop.Exec.Command
	if len(cmd) != 2 || cmd[0] != "sleep" {
		t.Fatalf("preStop %v, want [sleep N]", cmd)
	}
	preStop, err := strconv.Atoi(cmd[1])
	if err != nil {
		t.Fatalf("preStop sleep %q: %v", cmd[1], err)
	}
	drain, err := time.ParseDuration(flagValue(c.Args, "drain-timeout"))
	if err != nil {
		t.Fatalf("--drain-timeout: %v", err)
	}
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= drain+time.Duration(preStop)*time.Second {
		t.Errorf("terminationGracePeriodSeconds %s does not exceed drain %s + preStop %ds", grace, drain, preStop)
	}

	// Security: non-root, read-only root, every writable path an emptyDir.
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v is not non-root", psc)
	}
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("container securityContext %+v: want a read-only root and no privilege escalation", csc)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("mount %s names no volume %q", m.MountPath, m.Name)
		}
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, name := range []string{"XDG_CACHE_HOME", "CUDA_CACHE_PATH"} {
		dir := env[name].Value
		m, ok := mounts[dir]
		if !ok && name == "CUDA_CACHE_PATH" {
			m, ok = mounts[dir[:strings.LastIndex(dir, "/")]]
		}
		if !ok || volumes[m.Name].EmptyDir == nil {
			t.Errorf("$%s=%q is not on an emptyDir (the root filesystem is read-only)", name, dir)
		}
	}
	if m, ok := mounts["/tmp"]; !ok || volumes[m.Name].EmptyDir == nil {
		t.Errorf("/tmp is not an emptyDir")
	}
	modelDir := flagValue(c.Args, "model-repository") + flagValue(c.Args, "model")
	found := false
	for path, m := range mounts {
		if strings.HasPrefix(modelDir, path) && m.Name == "models" {
			found = m.ReadOnly
		}
	}
	if !found {
		t.Errorf("model path %q is not on the read-only models volume", modelDir)
	}

	// The HPA scales this Deployment, on metrics the adapter rules serve.
	if o.hpa != nil {
		ref := o.hpa.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != dep.Name {
			t.Errorf("HPA targets %+v, want apps/v1 Deployment %s", ref, dep.Name)
		}
		if dep.Spec.Replicas != nil {
			t.Errorf("Deployment sets replicas %d under an HPA (each upgrade would reset the HPA's count)", *dep.Spec.Replicas)
		}
		served := map[string]bool{}
		for _, r := range adapterRules(t, o) {
			served[r.Name.As] = true
		}
		for _, m := range o.hpa.Spec.Metrics {
			if m.Pods != nil && !served[m.Pods.Metric.Name] {
				t.Errorf("HPA metric %q is served by no prometheus-adapter rule", m.Pods.Metric.Name)
			}
		}
	}
	// The ServiceMonitor scrapes the Service's metrics port.
	if sm := o.serviceMonitor; sm != nil {
		if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(o.service.Labels)) {
			t.Errorf("ServiceMonitor selector does not match the Service")
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
			t.Errorf("ServiceMonitor endpoints %+v, want the metrics port", sm.Spec.Endpoints)
		}
	}

	// GPU values: a GPU, a GPU node, the CUDA image and engine.
	if strings.HasPrefix(sc.name, "gpu") {
		if q, ok := c.Resources.Limits["nvidia.com/gpu"]; !ok || q.Value() != 1 {
			t.Errorf("GPU limits %v", c.Resources.Limits)
		}
		if !strings.HasSuffix(c.Image, "-cuda") || flagValue(c.Args, "engine") != "cuda" {
			t.Errorf("GPU image %s, engine %s", c.Image, flagValue(c.Args, "engine"))
		}
		if pod.Spec.RuntimeClassName == nil || len(pod.Spec.Tolerations) == 0 || len(pod.Spec.NodeSelector) == 0 {
			t.Errorf("GPU pod lacks runtimeClassName, tolerations or nodeSelector")
		}
	}
	checkLive(t, o, c)
}

// adapterRules decodes the rules ConfigMap strictly.
func adapterRules(t *testing.T, o *objects) []adapterRule {
	t.Helper()
	for _, cm := range o.configMaps {
		if strings.HasSuffix(cm.Name, "-prometheus-adapter-rules") {
			js, err := yaml.YAMLToJSONStrict([]byte(cm.Data["config.yaml"]))
			if err != nil {
				t.Fatal(err)
			}
			var cfg adapterConfig
			if err := strictJSON(js, &cfg); err != nil {
				t.Fatalf("prometheus-adapter config: %v", err)
			}
			for _, r := range cfg.Rules {
				if _, err := regexp.Compile(r.Name.Matches); err != nil {
					t.Errorf("rule %q: %v", r.Name.Matches, err)
				}
			}
			return cfg.Rules
		}
	}
	return nil
}

// seriesNames lists the metric names a PromQL expression mentions before
// a label matcher: name{...}.
var seriesNames = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
