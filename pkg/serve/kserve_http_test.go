package serve

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// articleBody is the article's client request byte for byte (Python's
// json.dumps with ensure_ascii=True), including the `shape` it puts on the
// requested output and its misspelt Content_Type header.
const articleBody = `{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 1], "data": ["\u9152\u5e97\u5f88\u597d"]}], "outputs": [{"name": "embeddings", "shape": [1, 768]}]}`

func TestKServeHTTP(t *testing.T) {
	ts := startRepoServer(t, 8, 2000, Config{MaxRequestBytes: 1 << 16})
	ref := loadReference(t)

	t.Run("article request works unchanged", func(t *testing.T) {
		code, _, b := ts.do(t, http.MethodPost, "/v2/models/m3e/infer", []byte(articleBody), map[string]string{"Content_Type": "application/json"})
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, b)
		}
		var r kserveResponse
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.ModelName != "m3e" || r.ModelVersion != "1" || len(r.Outputs) != 1 {
			t.Fatalf("response %s", b)
		}
		o := r.Outputs[0]
		if o.Name != "embeddings" || o.Datatype != "FP32" || len(o.Shape) != 2 || o.Shape[0] != 1 || o.Shape[1] != tinyDim {
			t.Fatalf("output %+v", o)
		}
		if ref[0].Text != "酒店很好" {
			t.Fatalf("reference case 0 is %q", ref[0].Text)
		}
		assertClose(t, "article text", o.Data, ref[0].Embedding)
	})

	t.Run("multi-row requests match the reference", func(t *testing.T) {
		for lo := 0; lo < len(ref); lo += 8 {
			hi := min(lo+8, len(ref))
			var texts []string
			for _, c := range ref[lo:hi] {
				texts = append(texts, c.Text)
			}
			code, b := ts.post(t, "/v2/models/m3e/versions/1/infer", inferBody(texts...))
			if code != http.StatusOK {
				t.Fatalf("rows %d-%d: status %d: %s", lo, hi, code, b)
			}
			var r kserveResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if got := r.Outputs[0].Shape; got[0] != int64(hi-lo) || got[1] != tinyDim {
				t.Fatalf("shape %v", got)
			}
			for i := lo; i < hi; i++ {
				assertClose(t, "case "+strconv.Itoa(i), r.Outputs[0].Data[(i-lo)*tinyDim:(i-lo+1)*tinyDim], ref[i].Embedding)
			}
		}
	})

	t.Run("flat shape [N] and request id echoed", func(t *testing.T) {
		code, b := ts.post(t, "/v2/models/m3e/infer", `{"id":"abc","inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["a","b"]}]}`)
		var r kserveResponse
		if code != http.StatusOK || json.Unmarshal(b, &r) != nil || r.ID != "abc" || r.Outputs[0].Shape[0] != 2 {
			t.Fatalf("status %d: %s", code, b)
		}
	})

	t.Run("binary tensor extension both ways", func(t *testing.T) {
		texts := []string{ref[0].Text, ref[1].Text}
		data := bytesTensor(texts...)
		header := `{"id":"bin","inputs":[{"name":"text","shape":[2,1],"datatype":"BYTES","parameters":{"binary_data_size":` +
			strconv.Itoa(len(data)) + `}}],"outputs":[{"name":"embeddings","parameters":{"binary_data":true}}]}`
		code, h, b := ts.do(t, http.MethodPost, "/v2/models/m3e/infer", append([]byte(header), data...),
			map[string]string{headerContentLength: strconv.Itoa(len(header)), "Content-Type": "application/octet-stream"})
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, b)
		}
		n, err := strconv.Atoi(h.Get(headerContentLength))
		if err != nil || n > len(b) {
			t.Fatalf("%s = %q for a %d-byte body", headerContentLength, h.Get(headerContentLength), len(b))
		}
		var r kserveResponse
		if err := json.Unmarshal(b[:n], &r); err != nil {
			t.Fatalf("JSON header %q: %v", b[:n], err)
		}
		size, _ := r.Outputs[0].Parameters["binary_data_size"].(float64)
		raw := b[n:]
		if int(size) != len(raw) || len(raw) != 4*2*tinyDim || r.Outputs[0].Data != nil {
			t.Fatalf("binary_data_size %v, %d bytes follow, data %v", size, len(raw), r.Outputs[0].Data)
		}
		got := make([]float32, len(raw)/4)
		for i := range got {
			got[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		assertClose(t, "binary row 0", got[:tinyDim], ref[0].Embedding)
		assertClose(t, "binary row 1", got[tinyDim:], ref[1].Embedding)
	})

	t.Run("metadata config ready", func(t *testing.T) {
		code, b := ts.get(t, "/v2")
		mustContain(t, string(b), `"name":"m3ectl"`, "binary_tensor_data")
		if code != http.StatusOK {
			t.Fatalf("GET /v2: %d", code)
		}
		for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/m3e/ready", "/v2/models/m3e/versions/1/ready"} {
			if code, _ := ts.get(t, p); code != http.StatusOK {
				t.Errorf("GET %s: %d", p, code)
			}
		}
		code, b = ts.get(t, "/v2/models/m3e")
		var md modelMetadata
		if code != http.StatusOK || json.Unmarshal(b, &md) != nil {
			t.Fatalf("metadata %d %s", code, b)
		}
		if md.Name != "m3e" || len(md.Versions) != 1 || md.Inputs[0].Datatype != "BYTES" || md.Outputs[0].Shape[1] != tinyDim {
			t.Errorf("metadata %s", b)
		}
		code, b = ts.get(t, "/v2/models/m3e/config")
		if code != http.StatusOK {
			t.Fatalf("config %d %s", code, b)
		}
		mustContain(t, string(b), `"max_batch_size":8`, `"TYPE_STRING"`, `"dynamic_batching"`)
		// Triton prints 64-bit integers as numbers: clients read dims as ints.
		var cfg struct {
			Output []struct {
				Dims []int64 `json:"dims"`
			} `json:"output"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil || len(cfg.Output) != 1 || len(cfg.Output[0].Dims) != 1 || cfg.Output[0].Dims[0] != tinyDim {
			t.Errorf("config output dims not [%d] as numbers (%v): %s", tinyDim, err, b)
		}
	})

	t.Run("bad input answers 4xx with a message", func(t *testing.T) {
		big := `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["` + strings.Repeat("x", 1<<16) + `"]}]}`
		tests := []struct {
			name, method, path, body string
			want                     int
			msg                      string
		}{
			{"malformed JSON", "POST", "/v2/models/m3e/infer", `{"inputs":`, 400, "malformed JSON"},
			{"wrong tensor name", "POST", "/v2/models/m3e/infer", `{"inputs":[{"name":"input_ids","datatype":"BYTES","shape":[1],"data":["x"]}]}`, 400, "input_ids"},
			{"wrong datatype", "POST", "/v2/models/m3e/infer", `{"inputs":[{"name":"text","datatype":"FP32","shape":[1],"data":[1.5]}]}`, 400, "datatype"},
			{"wrong shape", "POST", "/v2/models/m3e/infer", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,2],"data":["x","y"]}]}`, 400, "shape"},
			{"data not matching shape", "POST", "/v2/models/m3e/infer", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[3,1],"data":["x"]}]}`, 400, "holds 3"},
			{"invalid UTF-8", "POST", "/v2/models/m3e/infer", "{\"inputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"\xc3\x28\"]}]}", 400, "UTF-8"},
			{"more rows than max_batch_size", "POST", "/v2/models/m3e/infer", inferBody("1", "2", "3", "4", "5", "6", "7", "8", "9"), 400, "max_batch_size 8"},
			{"unknown requested output", "POST", "/v2/models/m3e/infer", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}],"outputs":[{"name":"logits"}]}`, 400, "logits"},
			{"oversized body", "POST", "/v2/models/m3e/infer", big, 413, "larger than"},
			{"unknown model", "POST", "/v2/models/nope/infer", inferBody("x"), 404, "nope"},
			{"unknown version", "POST", "/v2/models/m3e/versions/7/infer", inferBody("x"), 404, "7"},
			{"unknown model metadata", "GET", "/v2/models/nope", "", 404, "nope"},
			{"unknown route", "GET", "/v3/whatever", "", 404, "no endpoint"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, h, b := ts.do(t, tc.method, tc.path, []byte(tc.body), nil)
				if code != tc.want {
					t.Fatalf("status %d, want %d: %s", code, tc.want, b)
				}
				if ct := h.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				mustContain(t, errorBody(t, b), tc.msg)
			})
		}
	})
}

func TestConcurrentClientsAreBatched(t *testing.T) {
	ts := startRepoServer(t, 32, 20000, Config{})
	ref := loadReference(t)
	const clients, each = 24, 4
	parallel(clients, func(i int) {
		for j := range each {
			c := ref[(i+j)%8]
			code, b := ts.post(t, "/v2/models/m3e/infer", inferBody(c.Text))
			if code != http.StatusOK {
				t.Errorf("status %d: %s", code, b)
				return
			}
			var r kserveResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Error(err)
				return
			}
			assertClose(t, "concurrent", r.Outputs[0].Data, c.Embedding)
		}
	})
	code, b := ts.get(t, "/v2/models/m3e/stats")
	if code != http.StatusOK {
		t.Fatalf("stats %d %s", code, b)
	}
	var st jsonStatsResponse
	if err := json.Unmarshal(b, &st); err != nil || len(st.ModelStats) != 1 {
		t.Fatalf("stats %s: %v", b, err)
	}
	ms := st.ModelStats[0]
	if ms.InferenceStats.Success.Count != clients*each || ms.InferenceCount != clients*each {
		t.Errorf("success %d inferences %d, want %d", ms.InferenceStats.Success.Count, ms.InferenceCount, clients*each)
	}
	if ms.ExecutionCount == 0 || ms.ExecutionCount >= clients*each {
		t.Errorf("execution_count %d for %d requests: no dynamic batching", ms.ExecutionCount, clients*each)
	}
	t.Logf("%d requests in %d executions", clients*each, ms.ExecutionCount)

	code, b = ts.get(t, "/v2/models/stats")
	if code != http.StatusOK || !strings.Contains(string(b), `"name":"m3e"`) {
		t.Errorf("all-model stats %d %s", code, b)
	}

	resp, err := http.Get("http://" + ts.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	scrape, _ := io.ReadAll(resp.Body)
	mustContain(t, string(scrape),
		`nv_inference_request_success{model="m3e",version="1"} 96`,
		"nv_inference_request_failure", "nv_inference_count", "nv_inference_exec_count",
		"nv_inference_request_duration_us", "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us")
}

func TestRepositoryControl(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 8, 1000))
	writeModel(t, root, "other", "1", modelConfig("other", 8, 1000))
	ts := startServer(t, serverOpts{repo: repository.Config{Root: root, ControlMode: "explicit", StartupModels: []string{"m3e"}}})

	index := func() map[string]indexEntry {
		code, b := ts.post(t, "/v2/repository/index", "")
		var es []indexEntry
		if code != http.StatusOK || json.Unmarshal(b, &es) != nil {
			t.Fatalf("index %d %s", code, b)
		}
		out := map[string]indexEntry{}
		for _, e := range es {
			out[e.Name] = e
		}
		return out
	}
	if ix := index(); ix["m3e"].State != "READY" || ix["other"].State == "READY" {
		t.Fatalf("index at start %+v", ix)
	}
	if code, b := ts.post(t, "/v2/models/other/infer", inferBody("x")); code < 400 || code >= 600 {
		t.Fatalf("infer on unloaded model: %d %s", code, b)
	}
	if code, b := ts.post(t, "/v2/repository/models/other/load", ""); code != http.StatusOK {
		t.Fatalf("load %d %s", code, b)
	}
	if code, b := ts.post(t, "/v2/models/other/infer", inferBody("x")); code != http.StatusOK {
		t.Fatalf("infer after load %d %s", code, b)
	}
	if code, b := ts.post(t, "/v2/repository/models/m3e/unload", ""); code != http.StatusOK {
		t.Fatalf("unload %d %s", code, b)
	}
	ix := index()
	if ix["m3e"].State == "READY" || ix["other"].State != "READY" {
		t.Fatalf("index after unload %+v", ix)
	}
	code, b := ts.post(t, "/v2/repository/index", `{"ready":true}`)
	if code != http.StatusOK || strings.Contains(string(b), `"m3e"`) {
		t.Errorf("ready-only index %d %s", code, b)
	}
	// A new version folder appears: load reloads, and version 2 serves.
	writeModel(t, root, "other", "2", modelConfig("other", 8, 1000))
	if code, b := ts.post(t, "/v2/repository/models/other/load", ""); code != http.StatusOK {
		t.Fatalf("reload %d %s", code, b)
	}
	code, b = ts.post(t, "/v2/models/other/infer", inferBody("x"))
	var r kserveResponse
	if code != http.StatusOK || json.Unmarshal(b, &r) != nil || r.ModelVersion != "2" {
		t.Fatalf("infer after reload: %d %s", code, b)
	}
	if code, b := ts.post(t, "/v2/repository/models/..%2Fetc/load", ""); code < 400 || code >= 500 {
		t.Errorf("load of a traversal name: %d %s", code, b)
	}
	// Model files sent inline are not supported (config overrides are:
	// load_config_test.go).
	if code, b := ts.post(t, "/v2/repository/models/other/load", `{"parameters":{"file:1/model.onnx":"AAAA"}}`); code != http.StatusBadRequest {
		t.Errorf("load with file: parameter: %d %s", code, b)
	}
}
