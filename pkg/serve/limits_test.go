package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

var testScanLimits = jsonLimits{depth: 8, keys: 4, inputs: 2, outputs: 2, elements: 3, stringBytes: 10,
	elementsWhat: "data elements", unit: "test", elementsKind: kindInvalidInput}

func TestScanJSON(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // "" accepts; else a substring of the error
		elements   int
	}{
		{"article request", `{"inputs":[{"name":"text","shape":[2,1],"datatype":"BYTES","data":["ab","c"]}],"outputs":[{"name":"e"}]}`, "", 2},
		{"nested data", `{"inputs":[{"name":"t","shape":[2,1],"data":[["a"],["b"]]}]}`, "", 2},
		{"escapes", `{"inputs":[{"name":"t\"x","data":["\"\\"]}]}`, "", 1},
		{"too many inputs", `{"inputs":[{},{},{}]}`, "more than 2 inputs", 0},
		{"too many outputs", `{"outputs":[{},{},{}]}`, "more than 2 outputs", 0},
		{"too many elements", `{"inputs":[{"data":["a","b","c","d"]}]}`, "more than 3 data elements", 0},
		{"elements across inputs", `{"inputs":[{"data":["a","b"]},{"data":["c","d"]}]}`, "more than 3 data elements", 0},
		{"string bytes", `{"inputs":[{"data":["0123456789a"]}]}`, "more than 10 bytes", 0},
		{"duplicate key", `{"inputs":[],"inputs":[]}`, "duplicate key \"inputs\"", 0},
		{"duplicate nested key", `{"inputs":[{"name":"a","name":"b"}]}`, "duplicate key \"name\"", 0},
		{"too many keys", `{"a":1,"b":2,"c":3,"d":4,"e":5}`, "more than 4 keys", 0},
		{"too deep", `{"x":[[[[[[[[[]]]]]]]]]}`, "deeper than 8", 0},
		{"same key in sibling objects", `{"inputs":[{"name":"a"},{"name":"b"}]}`, "", 0},
		{"field names match case-insensitively", `{"INPUTS":[{"Data":["a","b","c","d"]}]}`, "more than 3 data elements", 0},
		{"unterminated", `{"inputs":[{"name":"a`, "malformed", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := scanJSON([]byte(tc.body), schemaKServe, testScanLimits)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.elements != tc.elements {
					t.Errorf("%d elements, want %d", c.elements, tc.elements)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzScanJSON: the scan never panics, never calls valid JSON malformed,
// and counts OpenAI inputs as encoding/json decodes them.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"input":["a","b"]}`, `{"input":"x","model":"m"}`, `{"inputs":[{"data":[["a"]]}]}`, `[1,{"a":[true,null]}]`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	lim := jsonLimits{depth: 64, keys: 1 << 20, inputs: 1 << 20, outputs: 1 << 20, elements: 1 << 20, stringBytes: 1 << 30}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := scanJSON(b, schemaOpenAI, lim)
		if !json.Valid(b) {
			return
		}
		if err != nil {
			if strings.Contains(err.Error(), "malformed") {
				t.Fatalf("valid JSON %q called malformed: %v", b, err)
			}
			return
		}
		var req struct {
			Input json.RawMessage `json:"input"`
		}
		if json.Unmarshal(b, &req) != nil || len(req.Input) == 0 {
			return
		}
		var list []json.RawMessage
		want := 1
		if json.Unmarshal(req.Input, &list) == nil {
			want = len(list)
			for _, it := range list {
				if t := bytes.TrimSpace(it); len(t) > 0 && (t[0] == '[') {
					return // nested lists are counted by their leaves
				}
			}
		}
		if c.elements != want {
			t.Fatalf("%q: scan counted %d inputs, encoding/json %d", b, c.elements, want)
		}
	})
}

// heapAllocated runs f and returns the bytes the process allocated meanwhile.
func heapAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileBodiesCostLittle: the amplification bodies, scaled down
// (1M empty objects, 2.5M empty strings, 1M empty gRPC tensors) are refused
// with a 4xx that names the limit, having allocated at most 4× their size
// (before: ~120×, ~4× and ~40×).
func TestHostileBodiesCostLittle(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{})
	var objects, strs bytes.Buffer
	objects.WriteString(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":[""]}`)
	objects.WriteString(strings.Repeat(",{}", 1_000_000))
	objects.WriteString("]}")
	strs.WriteString(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[2500000],"data":[""`)
	strs.WriteString(strings.Repeat(`,""`, 2_500_000-1))
	strs.WriteString("]}]}")
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty objects", objects.Bytes(), "more than 8 inputs"},
		{"empty strings", strs.Bytes(), "more than 8 data elements"},
	} {
		var code int
		var b []byte
		alloc := heapAllocated(func() { code, b = ts.post(t, "/v2/models/m3e/infer", string(c.body)) })
		if code != http.StatusBadRequest || !strings.Contains(errorBody(t, b), c.want) {
			t.Errorf("%s: %d %s", c.name, code, b)
		}
		// The client's own copy of the body is counted too.
		if limit := uint64(4 * len(c.body)); alloc > limit {
			t.Errorf("%s: %d MB allocated for a %d MB body (limit 4×)", c.name, alloc>>20, len(c.body)>>20)
		}
		t.Logf("%s: %d MB body, %d MB allocated", c.name, len(c.body)>>20, alloc>>20)
	}

	gc := dialGRPC(t, ts.GRPCAddr())
	req := &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: make([]*tritonpb.ModelInferRequest_InferInputTensor, 1_000_000)}
	for i := range req.Inputs {
		req.Inputs[i] = &tritonpb.ModelInferRequest_InferInputTensor{}
	}
	var err error
	alloc := heapAllocated(func() { _, err = gc.ModelInfer(context.Background(), req) })
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "more than 8 inputs") {
		t.Errorf("gRPC empty tensors: %v", err)
	}
	t.Logf("gRPC 1M empty tensors: %d MB allocated (client included)", alloc>>20)
	if alloc > 100<<20 {
		t.Errorf("gRPC empty tensors: %d MB allocated", alloc>>20)
	}

	// Nesting deeper than the declared shape is refused.
	code, b := ts.post(t, "/v2/models/m3e/infer", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":[[["深"]]]}]}`)
	if code != http.StatusBadRequest || !strings.Contains(errorBody(t, b), "nested 3 deep") {
		t.Errorf("over-nested data: %d %s", code, b)
	}
	code, b = ts.post(t, "/v2/models/m3e/infer", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["a"],"data":["b"]}]}`)
	if code != http.StatusBadRequest || !strings.Contains(errorBody(t, b), "duplicate key") {
		t.Errorf("duplicate key: %d %s", code, b)
	}
}

// TestInflightBudget: a body whose weight does not fit beside the bodies
// already in flight is answered 503 + Retry-After before it is read, HTTP
// and gRPC alike; once the first finishes, the same request succeeds.
func TestInflightBudget(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{MaxRequestBytes: 1 << 20, MaxInflightBytes: 1 << 20})
	// A client declares 220 kB (weight 880 kB of 1 MiB) and sends nothing yet.
	c, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v2/models/m3e/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 220000\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	big := inferBody(strings.Repeat("长", 20000)) // 60 kB: weight 240 kB, over the 168 kB left
	code, h, b := ts.do(t, "POST", "/v2/models/m3e/infer", []byte(big), nil)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(errorBody(t, b), "--max-inflight-bytes") {
		t.Errorf("over the budget: %d %v %s", code, h, b)
	}
	gc := dialGRPC(t, ts.GRPCAddr())
	req := &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{bytes.Repeat([]byte("长"), 20000)}}}}}
	if _, err := gc.ModelInfer(context.Background(), req); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC over the budget: %v", err)
	}
	if code, _ := ts.post(t, "/v2/models/m3e/infer", inferBody("小")); code != http.StatusOK {
		t.Errorf("small request beside the held one: %d", code)
	}
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); ts.budget.used.Load() != 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if code, b := ts.post(t, "/v2/models/m3e/infer", big); code != http.StatusOK {
		t.Errorf("after the held body went away: %d %s", code, b)
	}
	if _, err := gc.ModelInfer(context.Background(), req); err != nil {
		t.Errorf("gRPC after: %v", err)
	}
	if u := ts.budget.used.Load(); u != 0 {
		t.Errorf("%d bytes of budget still held after every request ended", u)
	}
}

// FuzzScanInferProto: the wire scan never panics, and what it accepts
// unmarshals within the limits it checks.
func FuzzScanInferProto(f *testing.F) {
	seed, _ := proto.Marshal(&tritonpb.ModelInferRequest{ModelName: "m", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1},
		Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte("x")}}}}, RawInputContents: [][]byte{{1, 0, 0, 0, 'a'}}})
	f.Add(seed)
	lim := Limits{}
	lim.setDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		if scanInferProto(b, lim) != nil {
			return
		}
		var req tritonpb.ModelInferRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		if len(req.GetInputs()) > lim.MaxInputs || len(req.GetOutputs()) > lim.MaxOutputs || len(req.GetRawInputContents()) > lim.MaxInputs {
			t.Fatalf("scan accepted %d inputs, %d outputs, %d raw", len(req.GetInputs()), len(req.GetOutputs()), len(req.GetRawInputContents()))
		}
		n := 0
		for _, in := range req.GetInputs() {
			n += len(in.GetContents().GetBytesContents())
		}
		if n > maxBytesElements {
			t.Fatalf("scan accepted %d elements", n)
		}
	})
}
