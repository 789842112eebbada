package repository

import (
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// TestInterpretInstanceGroups pins Triton's placement rule: count instances on
// each GPU a group lists, count on the default device when it lists none.
func TestInterpretInstanceGroups(t *testing.T) {
	tests := []struct {
		name    string
		groups  string
		want    []instanceSpec
		wantErr string
	}{
		{"no group: one instance", ``, []instanceSpec{{kind: tritonpb.ModelInstanceGroup_KIND_AUTO, count: 1}}, ""},
		{"count 0 means 1", `instance_group [ { kind: KIND_CPU } ]`, []instanceSpec{{kind: tritonpb.ModelInstanceGroup_KIND_CPU, count: 1}}, ""},
		{"article: two on GPU 0", `instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0 ] } ]`,
			[]instanceSpec{{kind: tritonpb.ModelInstanceGroup_KIND_GPU, count: 2, device: 0}}, ""},
		{"two per GPU on two GPUs", `instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] } ]`,
			[]instanceSpec{{kind: tritonpb.ModelInstanceGroup_KIND_GPU, count: 2, device: 0}, {kind: tritonpb.ModelInstanceGroup_KIND_GPU, count: 2, device: 1}}, ""},
		{"negative gpu", `instance_group [ { count: 1 kind: KIND_GPU gpus: [ -1 ] } ]`, nil, "gpu -1 is negative"},
		{"too many in all", `instance_group [ { count: 40 kind: KIND_GPU gpus: [ 0, 1 ] } ]`, nil, "at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tritonpb.ParseConfig([]byte(`name: "m" backend: "python" max_batch_size: 8
input [ { name: "text" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "embeddings" data_type: TYPE_FP32 dims: [ 64 ] } ]
` + tc.groups))
			if err != nil {
				t.Fatal(err)
			}
			sp, err := interpret(cfg, t.TempDir())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(sp.instances) != len(tc.want) {
				t.Fatalf("instances = %+v, want %+v", sp.instances, tc.want)
			}
			for i := range tc.want {
				if sp.instances[i] != tc.want[i] {
					t.Errorf("instance group %d = %+v, want %+v", i, sp.instances[i], tc.want[i])
				}
			}
		})
	}
}

// TestInterpretRepoParameters: the parameters m3ectl repo writes take effect,
// and file names cannot leave the version folder.
func TestInterpretRepoParameters(t *testing.T) {
	cls, mean := engine.PoolCLS, engine.PoolMean
	yes, no := true, false
	tests := []struct {
		name    string
		params  map[string]string
		want    modelFiles
		wantErr string
	}{
		{"as m3ectl repo writes them",
			map[string]string{"engine": "model.plan", "onnx": "model.onnx", "vocab": "vocab.txt", "pooling": "mean", "normalize": "true", "lowercase": "true", "max_length": "512"},
			modelFiles{onnx: "model.onnx", vocab: "vocab.txt", pooling: &mean, normalize: &yes, lowercase: &yes}, ""},
		{"cls without normalisation, case-insensitive keys",
			map[string]string{"POOLING": "cls", "Normalize": "false", "LOWERCASE": "false"},
			modelFiles{pooling: &cls, normalize: &no, lowercase: &no}, ""},
		{"vocab outside the folder", map[string]string{"vocab": "../../vocab.txt"}, modelFiles{}, "must be a file name in the version folder"},
		{"absolute onnx path", map[string]string{"onnx": "/etc/model.onnx"}, modelFiles{}, "must be a file name in the version folder"},
		{"unknown pooling", map[string]string{"pooling": "weightedmean"}, modelFiles{}, "not supported"},
		{"normalize not a bool", map[string]string{"normalize": "yes please"}, modelFiles{}, "not true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tritonpb.ModelConfig{Name: "m", Parameters: map[string]*tritonpb.ModelParameter{}}
			for k, v := range tc.params {
				cfg.Parameters[k] = &tritonpb.ModelParameter{StringValue: v}
			}
			sp := &spec{cfg: cfg}
			err := sp.readParameters(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := notHonoured(cfg); len(got) != 0 {
				t.Errorf("reported as not honoured: %v", got)
			}
			g, w := sp.files, tc.want
			if g.onnx != w.onnx || g.vocab != w.vocab || !eqPtr(g.pooling, w.pooling) || !eqPtr(g.normalize, w.normalize) || !eqPtr(g.lowercase, w.lowercase) {
				t.Errorf("files = %+v, want %+v", g, w)
			}
		})
	}
}

func eqPtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}
