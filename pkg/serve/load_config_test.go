package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// TestLoadWithConfigOverride: POST .../load with parameters.config (and the
// gRPC equivalent) loads the model with that configuration, leaving
// config.pbtxt as it is; a plain load goes back to the file.
func TestLoadWithConfigOverride(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 4, 0))
	pbtxt := filepath.Join(root, "m3e", "config.pbtxt")
	before, _ := os.ReadFile(pbtxt)
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root, ControlMode: "explicit", StartupModels: []string{"m3e"}}})
	maxBatch := func() int {
		t.Helper()
		code, b := ts.get(t, "/v2/models/m3e/config")
		var c struct {
			MaxBatchSize int `json:"max_batch_size"`
		}
		if code != 200 || json.Unmarshal(b, &c) != nil {
			t.Fatalf("%d %s", code, b)
		}
		return c.MaxBatchSize
	}
	six := inferBody("a", "b", "c", "d", "e", "f")
	if code, _ := ts.post(t, "/v2/models/m3e/infer", six); code != 400 || maxBatch() != 4 {
		t.Fatalf("six texts on max_batch_size 4: %d", code)
	}

	override := `{"name":"m3e","backend":"onnxruntime","max_batch_size":8,"instance_group":[{"count":1,"kind":"KIND_CPU"}],"dynamic_batching":{}}`
	body, _ := json.Marshal(map[string]any{"parameters": map[string]any{"config": override}})
	if code, b := ts.post(t, "/v2/repository/models/m3e/load", string(body)); code != 200 {
		t.Fatalf("load with config: %d %s", code, b)
	}
	if got := maxBatch(); got != 8 {
		t.Fatalf("max_batch_size after the override = %d, want 8", got)
	}
	if code, b := ts.post(t, "/v2/models/m3e/infer", six); code != 200 {
		t.Fatalf("six texts after the override: %d %s", code, b)
	}
	if after, _ := os.ReadFile(pbtxt); string(after) != string(before) {
		t.Fatal("the override changed config.pbtxt")
	}

	if code, b := ts.post(t, "/v2/repository/models/m3e/load", ""); code != 200 || maxBatch() != 4 {
		t.Fatalf("plain load did not go back to config.pbtxt: %d %s, max_batch_size %d", code, b, maxBatch())
	}

	c := dialGRPC(t, ts.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.RepositoryModelLoad(ctx, &tritonpb.RepositoryModelLoadRequest{ModelName: "m3e", Parameters: map[string]*tritonpb.ModelRepositoryParameter{
		"config": {ParameterChoice: &tritonpb.ModelRepositoryParameter_StringParam{StringParam: `{"backend":"onnxruntime","max_batch_size":2}`}},
	}})
	if err != nil {
		t.Fatalf("gRPC load with config: %v", err)
	}
	cfg, err := c.ModelConfig(ctx, &tritonpb.ModelConfigRequest{Name: "m3e"})
	if err != nil || cfg.GetConfig().GetMaxBatchSize() != 2 {
		t.Fatalf("gRPC config after override: %v %v", cfg, err)
	}

	bad := []struct{ name, body, want string }{
		{"not JSON", `{"parameters":{"config":"{max_batch_size"}}`, "not a valid model configuration"},
		{"unknown field", `{"parameters":{"config":"{\"max_batch\":2}"}}`, "not a valid model configuration"},
		{"other model's name", `{"parameters":{"config":"{\"name\":\"other\"}"}}`, "names the model \"other\""},
		{"file parameter", `{"parameters":{"file:1/model.onnx":"AAAA"}}`, "not supported"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			code, b := ts.post(t, "/v2/repository/models/m3e/load", tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("%d %s", code, b)
			}
			mustContain(t, errorBody(t, b), tc.want)
		})
	}
}
