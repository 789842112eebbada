package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

func kindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return -1
}

func TestArticleConfigServes(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	writeModel(t, root, "m3e-base-trt", articleConfig, "1")
	reg := prometheus.NewRegistry()
	m := startManager(t, Config{Root: root, Engine: autoUnlessGPU(), Registerer: reg})

	if !m.Ready() {
		t.Fatalf("not ready; index %+v", m.Index(false))
	}
	md, err := m.Model("m3e-base-trt", "")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"version", md.Version(), "1"},
		{"dim", md.Dim(), 64},
		{"max batch", md.MaxBatchSize(), 32},
		{"input", md.InputName(), "text"},
		{"output", md.OutputName(), "embeddings"},
		{"config output dims", md.Config().GetOutput()[0].GetDims()[0], int64(64)},
		{"config backend", md.Config().GetBackend(), "python"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	checkReference(t, md, 8)

	// Concurrent requests go through the dynamic batcher over 2 instances.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := md.Infer(context.Background(), []string{"m3e 是一个中文句向量模型"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := md.Statistics()
	if st.GetInferenceCount() != 16 || st.GetInferenceStats().GetSuccess().GetCount() != 9 {
		t.Errorf("statistics: inference_count %d success %d, want 16 and 9", st.GetInferenceCount(), st.GetInferenceStats().GetSuccess().GetCount())
	}
	for name, want := range map[string]float64{"nv_inference_count": 16, "nv_inference_request_success": 9} {
		if got := metricValue(t, reg, name, "m3e-base-trt", "1"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "nv_inference_exec_count", "m3ectl_batch_size"); err != nil || n != 2 {
		t.Errorf("gathered %d series (%v), want 2", n, err)
	}
	if e, ok := entryFor(m.Index(true), "m3e-base-trt", "1"); !ok || e.State != StateReady {
		t.Errorf("index: %+v", m.Index(false))
	}
}

func TestLoadFailuresAreReported(t *testing.T) {
	needORT(t)
	cases := []struct {
		name, config string
		want         []string
	}{
		{"width mismatch", strings.Replace(articleConfig, "dims: [ 64 ]", "dims: [ 768 ]", 1), []string{"768", "64"}},
		{"tensorrt plan", `name: "bad" platform: "tensorrt_plan" max_batch_size: 8`, []string{"TensorRT"}},
		{"ensemble", `name: "bad" platform: "ensemble" max_batch_size: 8`, []string{"ensemble"}},
		{"typo in config", `name: "bad" max_batch_sise: 8`, []string{"max_batch_sise"}},
		{"name mismatch", `name: "other"`, []string{"other", "bad"}},
		{"wrong input type", `name: "bad" input [ { name: "text" data_type: TYPE_INT64 dims: [ -1 ] } ]`, []string{"TYPE_STRING"}},
		{"bad parameter", `name: "bad" parameters { key: "MAX_BATCH_TOKENS" value { string_value: "lots" } }`, []string{"MAX_BATCH_TOKENS"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			name := "bad"
			if strings.Contains(c.config, "m3e-base-trt") {
				name = "m3e-base-trt"
			}
			writeModel(t, root, name, c.config, "1")
			writeModel(t, root, "good", "", "1") // others keep serving
			m := startManager(t, Config{Root: root})
			_, err := m.Model(name, "")
			if kindOf(err) != Unavailable {
				t.Fatalf("Model: %v, want Unavailable", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var reason string
			for _, e := range m.Index(false) {
				if e.Name == name {
					reason = e.Reason
					if e.State != StateUnavailable {
						t.Errorf("index state %s, want UNAVAILABLE", e.State)
					}
				}
			}
			if reason == "" {
				t.Errorf("index has no reason for %s: %+v", name, m.Index(false))
			}
			if _, err := m.Model("good", ""); err != nil {
				t.Errorf("the good model does not serve: %v", err)
			}
			if !m.Ready() {
				t.Error("server not ready although a model serves")
			}
		})
	}
}

func TestVersionPolicy(t *testing.T) {
	onDisk := []int64{1, 2, 3}
	cases := []struct {
		name   string
		policy string
		want   []int64
	}{
		{"default is the latest", ``, []int64{3}},
		{"latest 2", `latest: { num_versions: 2 }`, []int64{2, 3}},
		{"all", `all: {}`, []int64{1, 2, 3}},
		{"specific", `specific: { versions: [3, 1, 3] }`, []int64{1, 3}},
		{"specific missing", `specific: { versions: [4] }`, []int64{4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := tritonpb.ParseConfig([]byte("version_policy: { " + c.policy + " }"))
			if c.policy == "" {
				cfg, err = &tritonpb.ModelConfig{}, nil
			}
			if err != nil {
				t.Fatal(err)
			}
			got := servedVersions(cfg.GetVersionPolicy(), onDisk)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestVersionsServe(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	writeModel(t, root, "tiny", "version_policy: { specific: { versions: [1, 3, 7] } }\nmax_batch_size: 4", "1", "3", "5")
	m := startManager(t, Config{Root: root})
	md, err := m.Model("tiny", "")
	if err != nil {
		t.Fatal(err)
	}
	if md.Version() != "3" {
		t.Errorf(`Model(tiny, "") is version %s, want the newest ready, 3`, md.Version())
	}
	for v, want := range map[string]ErrorKind{"1": -1, "3": -1, "5": NotFound, "7": Unavailable, "x": NotFound} {
		_, err := m.Model("tiny", v)
		if kindOf(err) != want {
			t.Errorf("version %s: %v, want kind %v", v, err, want)
		}
	}
	e, _ := entryFor(m.Index(false), "tiny", "7")
	if e.State != StateUnavailable || !strings.Contains(e.Reason, "does not exist") {
		t.Errorf("version 7 index entry %+v", e)
	}
}

func TestNames(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"m3e-base-trt", true}, {"model_1.v2", true}, {"中文模型", true},
		{"", false}, {".", false}, {"..", false}, {".hidden", false},
		{"a/b", false}, {"../etc", false}, {`a\b`, false}, {"tab\there", false},
		{strings.Repeat("x", 300), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := ValidateName(c.name); (err == nil) != c.ok {
				t.Errorf("ValidateName(%q) = %v, want ok=%v", c.name, err, c.ok)
			}
		})
	}
	root := t.TempDir()
	m, err := New(Config{Root: root, ControlMode: ModeExplicit, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(context.Background(), "../escape"); kindOf(err) != InvalidInput {
		t.Errorf("Load(../escape): %v, want InvalidInput", err)
	}
	if _, err := m.Model("a/../../b", ""); kindOf(err) != NotFound {
		t.Errorf("Model(a/../../b): %v, want NotFound", err)
	}
}

func TestSingleModelShortcut(t *testing.T) {
	needORT(t)
	cases := []struct {
		name, path, want string
	}{
		{"sentence-transformers folder", fixture("m3e-tiny", "hf"), "m3e-tiny"}, // the folder above hf/
		{"onnx file", fixture("m3e-tiny", "model.onnx"), "m3e-tiny"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "sentence-transformers folder" {
				// The hf folder has no model.onnx; link one in a copy.
				dir := filepath.Join(t.TempDir(), "m3e-tiny", "hf")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				ents, _ := os.ReadDir(c.path)
				for _, e := range ents {
					_ = os.Symlink(filepath.Join(c.path, e.Name()), filepath.Join(dir, e.Name()))
				}
				_ = os.Symlink(fixture("m3e-tiny", "model.onnx"), filepath.Join(dir, "model.onnx"))
				c.path = dir
			}
			m := startManager(t, Config{SinglePath: c.path})
			md, err := m.Model(c.want, "")
			if err != nil {
				t.Fatalf("%v; index %+v", err, m.Index(false))
			}
			if md.MaxBatchSize() != 32 || md.Config().GetOutput()[0].GetDims()[0] != 64 || md.Version() != "1" {
				t.Errorf("synthesised config: %v", md.Config())
			}
			checkReference(t, md, 4)
		})
	}
}

func TestWarmupSamples(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	dir := writeModel(t, root, "tiny", `max_batch_size: 4
model_warmup [ { name: "file" batch_size: 3 count: 2 inputs { key: "text" value { data_type: TYPE_STRING dims: [ 1 ] input_data_file: "texts" } } },
               { name: "zeros" batch_size: 1 inputs { key: "text" value { data_type: TYPE_STRING dims: [ 1 ] zero_data: true } } } ]`, "1")
	if err := os.Mkdir(filepath.Join(dir, "warmup"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "warmup", "texts"), "\x05\x00\x00\x00hello\x06\x00\x00\x00\xe4\xb8\xad\xe6\x96\x87")
	m := startManager(t, Config{Root: root})
	if _, err := m.Model("tiny", ""); err != nil {
		t.Fatal(err)
	}

	root2 := t.TempDir()
	writeModel(t, root2, "tiny", `model_warmup [ { name: "w" batch_size: 1 inputs { key: "text" value { data_type: TYPE_STRING dims: [ 1 ] input_data_file: "missing" } } } ]`, "1")
	m2 := startManager(t, Config{Root: root2})
	if _, err := m2.Model("tiny", ""); kindOf(err) != Unavailable || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing warmup file: %v", err)
	}
}

func TestNotHonouredFields(t *testing.T) {
	cases := []struct {
		name, config string
		want         []string
	}{
		{"article config is fully honoured", articleConfig, nil},
		{"empty dynamic_batching block", `dynamic_batching {}`, nil},
		{"known parameters", `parameters { key: "truncate" value { string_value: "false" } }`, nil},
		{"fields m3ectl ignores", `response_cache { enable: true }
metric_tags { key: "team" value: "search" }
optimization { cuda { graphs: true } }
dynamic_batching { priority_levels: 2 }
instance_group [ { count: 1 profile: [ "0" ] } ]
parameters { key: "FOO" value { string_value: "1" } }`,
			[]string{"dynamic_batching.priority_levels", "instance_group.profile", "metric_tags", "optimization.cuda.graphs", "parameters[FOO]", "response_cache.enable"}},
		{"empty unknown block", `response_cache {}`, []string{"response_cache"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := tritonpb.ParseConfig([]byte(c.config))
			if err != nil {
				t.Fatal(err)
			}
			got := notHonoured(cfg)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func FuzzParseWarmupStrings(f *testing.F) {
	f.Add([]byte("\x05\x00\x00\x00hello"))
	f.Add([]byte("\x00\x00\x00\x00"))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		texts, err := parseWarmupStrings(b)
		if err != nil {
			return
		}
		n := 0
		for _, s := range texts {
			n += 4 + len(s)
		}
		if n != len(b) {
			t.Fatalf("decoded %d bytes of %d", n, len(b))
		}
	})
}

// metricValue reads one counter series from a registry.
func metricValue(t *testing.T, reg *prometheus.Registry, name, model, version string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			lv := map[string]string{}
			for _, l := range mt.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			if lv["model"] == model && lv["version"] == version {
				return mt.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{model=%q,version=%q}", name, model, version)
	return 0
}

func TestBundledRepository(t *testing.T) {
	needORT(t)
	m := startManager(t, Config{Root: fixture("serve", "model_repository")})
	md, err := m.Model("m3e-base-trt", "1")
	if err != nil {
		t.Fatalf("%v; index %+v", err, m.Index(false))
	}
	checkReference(t, md, 30)
}
