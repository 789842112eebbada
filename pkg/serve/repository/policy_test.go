package repository

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/scheduler"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

func TestBatchingPolicyParameter(t *testing.T) {
	cases := []struct {
		val     string
		want    scheduler.Policy
		wantErr string
	}{
		{"continuous", scheduler.PolicyContinuous, ""},
		{"TRITON", scheduler.PolicyTriton, ""},
		{"greedy", 0, "want continuous or triton"},
	}
	for _, c := range cases {
		cfg := &tritonpb.ModelConfig{Name: "m", Parameters: map[string]*tritonpb.ModelParameter{
			"batching_policy": {StringValue: c.val},
		}}
		sp := &spec{cfg: cfg}
		err := sp.readParameters(cfg)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err %v, want %q", c.val, err, c.wantErr)
			}
			continue
		}
		if err != nil || sp.sched.Policy != c.want {
			t.Errorf("%q: policy %v, err %v; want %v", c.val, sp.sched.Policy, err, c.want)
		}
		if got := notHonoured(cfg); len(got) != 0 {
			t.Errorf("%q reported as not honoured: %v", c.val, got)
		}
	}
}

// With BATCHING_POLICY continuous a lone request does not wait out the
// config's (here absurd) max_queue_delay.
func TestContinuousPolicyFromConfig(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	writeModel(t, root, "m3e-base-trt", strings.Replace(articleConfig, "max_queue_delay_microseconds: 2000",
		"max_queue_delay_microseconds: 60000000", 1)+`parameters { key: "BATCHING_POLICY" value: { string_value: "continuous" } }
`, "1")
	m := startManager(t, Config{Root: root})
	md, err := m.Model("m3e-base-trt", "")
	if err != nil {
		t.Fatalf("%v; index %+v", err, m.Index(false))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := md.Infer(ctx, []string{"酒店很好"})
	if err != nil {
		t.Fatalf("a lone request under the continuous policy: %v", err)
	}
	if len(res.Embeddings) != 64 {
		t.Errorf("got %d floats, want 64", len(res.Embeddings))
	}
}

// The --model shortcut batches continuously by default, says so in its
// config, and takes --batching triton; the flag is refused for a repository.
func TestSingleModelBatchingPolicy(t *testing.T) {
	needORT(t)
	path := fixture("m3e-tiny", "model.onnx")
	for _, c := range []struct{ flag, want string }{{"", "continuous"}, {"triton", ""}} {
		m := startManager(t, Config{SinglePath: path, SingleBatching: c.flag})
		md, err := m.Model("m3e-tiny", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := md.Config().GetParameters()[ParamBatchingPolicy].GetStringValue(); got != c.want {
			t.Errorf("--batching %q: config says %s=%q, want %q", c.flag, ParamBatchingPolicy, got, c.want)
		}
	}
	if _, err := New(Config{Root: filepath.Dir(path), SingleBatching: "continuous"}); err == nil || !strings.Contains(err.Error(), ParamBatchingPolicy) {
		t.Errorf("batching flag with a repository: err %v, want a pointer to %s", err, ParamBatchingPolicy)
	}
	if _, err := New(Config{SinglePath: path, SingleBatching: "soon"}); err == nil {
		t.Error("an unknown policy was accepted")
	}
}
