package helm_test

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/m3ectl/m3ectl/deploy/internal/servetest"
)

const articleRequest = `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["酒店很好"]}],"outputs":[{"name":"embeddings"}]}`

// checkLive runs the real m3ectl binary with the container's arguments and
// environment, so m3ectl's own flag set parses them, and asks it what the
// probes, the ServiceMonitor and the adapter rules ask. Only the model's
// location (a fixture), the engine (no GPU here) and the listen addresses
// (loopback, free ports) are overridden, by flags appended after the chart's.
func checkLive(t *testing.T, o *objects, c *corev1.Container) {
	t.Helper()
	bin := servetest.Binary(t)
	root := servetest.Root()
	args := append([]string{}, c.Args...)
	model := ""
	switch {
	case flagValue(args, "model-repository") != "":
		args = append(args, "--model-repository="+filepath.Join(root, "testdata/serve/model_repository"))
		model = "m3e-base-trt"
	case flagValue(args, "model") != "":
		args = append(args, "--model="+filepath.Join(root, "testdata/m3e-tiny/hf"))
		model = flagValue(args, "name")
	default:
		t.Fatalf("args %v name no model", args)
	}
	loop, httpPort, grpcPort, metricsPort := servetest.Loopback(t)
	args = append(append(args, "--engine=cpu", "--threads=1"), loop...)
	local := map[string]int{"http": httpPort, "grpc": grpcPort, "metrics": metricsPort}

	var env []string
	apiKey := ""
	cache := t.TempDir()
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			apiKey = "key-from-" + e.ValueFrom.SecretKeyRef.Name
			env = append(env, e.Name+"="+apiKey)
		case strings.HasPrefix(e.Value, "/"):
			env = append(env, e.Name+"="+filepath.Join(cache, e.Value))
		default:
			env = append(env, e.Name+"="+e.Value)
		}
	}
	srv := servetest.Start(t, bin, args, env, httpPort, grpcPort, metricsPort)

	// The article's request, with the Secret's key when there is one.
	infer := func(key string) int {
		req, _ := http.NewRequest("POST", srv.URL()+"/v2/models/"+model+"/infer", strings.NewReader(articleRequest))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("infer: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := infer(apiKey); got != http.StatusOK {
		t.Errorf("article request with key %q: %d", apiKey, got)
	}
	if apiKey != "" {
		if got := infer(""); got != http.StatusUnauthorized {
			t.Errorf("request without the Secret's key: %d, want 401", got)
		}
	}

	// Every probe answers as the kubelet would see it on a ready pod.
	for kind, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		switch {
		case p.HTTPGet != nil:
			port := local[p.HTTPGet.Port.String()]
			code, _ := get(t, "http://127.0.0.1:"+strconv.Itoa(port)+p.HTTPGet.Path, "") // the kubelet sends no key
			if code != http.StatusOK {
				t.Errorf("%s probe GET %s on the %s port: %d, want 200", kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), code)
			}
		case p.GRPC != nil:
			service := ""
			if p.GRPC.Service != nil {
				service = *p.GRPC.Service
			}
			if status := grpcHealth(t, grpcPort, service); status != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("%s gRPC probe: %v, want SERVING", kind, status)
			}
		default:
			t.Errorf("%s probe has no handler m3ectl answers", kind)
		}
	}

	// The ServiceMonitor's path on the metrics port holds every series the
	// prometheus-adapter rules read.
	if sm := o.serviceMonitor; sm != nil {
		ep := sm.Spec.Endpoints[0]
		bearer := ""
		if a := ep.Authorization; a != nil && a.Credentials != nil {
			bearer = "key-from-" + a.Credentials.Name
		}
		code, body := get(t, "http://127.0.0.1:"+strconv.Itoa(local[ep.Port])+ep.Path, bearer)
		if code != http.StatusOK {
			t.Fatalf("ServiceMonitor scrape: %d", code)
		}
		for _, r := range adapterRules(t, o) {
			for _, m := range seriesNames.FindAllStringSubmatch(r.SeriesQuery+" "+r.MetricsQuery, -1) {
				if !strings.Contains(body, "\n"+m[1]+"{") && !strings.Contains(body, "\n"+m[1]+" ") {
					t.Errorf("adapter rule %s reads %s, which m3ectl does not export", r.Name.As, m[1])
				}
			}
		}
	}
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, srv.Log())
	}
}

func get(t *testing.T, url, bearer string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grpcHealth(t *testing.T, port int, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Errorf("gRPC health: %v", err)
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return resp.GetStatus()
}

// TestFlagSetRejects proves the live check can fail: a flag m3ectl does not
// have, passed through serve.extraArgs, renders but m3ectl refuses it.
func TestFlagSetRejects(t *testing.T) {
	servetest.ORTLib(t)
	manifest, err := render(t, scenario{set: []string{"serve.extraArgs={--max-batch-size=64}"}})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(manifest)
	if err != nil {
		t.Fatal(err)
	}
	args := append(m3ectlContainer(t, objs).Args, "--model-repository="+filepath.Join(servetest.Root(), "testdata/serve/model_repository"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, servetest.Binary(t), args...).CombinedOutput()
	// m3ectl words pflag's "unknown flag: --x" as "unknown flag --x (see ...)".
	if err == nil || !strings.Contains(string(out), "unknown flag") || !strings.Contains(string(out), "--max-batch-size") {
		t.Fatalf("m3ectl %v: %v, %s; want an unknown-flag error", args, err, out)
	}
}
