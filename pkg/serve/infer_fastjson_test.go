package serve

import (
	"reflect"
	"strings"
	"testing"
)

// slowDecodeKServe is the general path of handleInfer for a JSON body:
// the scan, encoding/json, the depth check.
func slowDecodeKServe(body []byte, lim fastLimits) (*inferCall, error) {
	counts, err := scanJSON(body, schemaKServe, jsonLimits{depth: lim.depth, keys: lim.keys, inputs: lim.inputs,
		outputs: lim.outputs, elements: lim.elements, stringBytes: lim.stringBytes, elementsKind: kindInvalidInput})
	if err != nil {
		return nil, err
	}
	call, err := decodeHTTPInfer(body, "")
	if err != nil {
		return nil, err
	}
	return call, checkDataDepth(call, counts)
}

var testFastLimits = fastLimits{depth: 32, keys: 64, inputs: 8, outputs: 8, elements: 32, stringBytes: 1 << 20}

// fastSeeds are request bodies of every shape the fast path meets: what
// clients send, and the near misses it must hand to the general path.
var fastSeeds = []string{
	articleBody,
	`{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES","data":["酒店很好"]}]}`,
	`{"id":"r1","parameters":{"binary_data_output":true,"timeout":1500,"priority":"x"},"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["a","b"]}],"outputs":[{"name":"embeddings","parameters":{"binary_data":false}}]}`,
	` { "id" : null , "inputs" : [ { "datatype" : "BYTES" , "name" : "text" , "shape" : [ 1 ] , "data" : [ "\ud83d\ude00 \u00e9\n\"\\/\b\f\r\t" ] } ] } `,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["\ud800 lone \udc00"]}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x"]}],"outputs":[{"name":"embeddings","shape":[1,768],"foo":"bar","n":null,"t":true,"f":-1.5e3}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x"]}],"outputs":[{"name":"embeddings","parameters":{"classification":2}}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x"]}],"INPUTS":[]}`,
	`{"inputs":[{"NAME":"text","shape":[1],"datatype":"BYTES","data":["x"]}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x"]}],"outputs":[{"name":"e","ſhape":1,"Name":"y"}]}`,
	`{"inputs":[{"name":"text","name":"text","shape":[1],"datatype":"BYTES","data":["x"]}]}`,
	`{"inputs":[{"name":"text","shape":[1.0],"datatype":"BYTES","data":["x"]}]}`,
	`{"inputs":[{"name":"text","shape":[-1],"datatype":"BYTES","data":["x"]}]}`,
	`{"inputs":[{"name":"text","shape":[99999999999999999999],"datatype":"BYTES","data":["x"]}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"FP32","data":[1]}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":[["x"]]}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":null}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x"],"parameters":{"binary_data_size":1}}]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x"]}]} x`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x\q"]}]}`,
	`{"parameters":{"timeout":-1},"inputs":[]}`,
	`{"parameters":{"timeout":1e400},"inputs":[]}`,
	`{"parameters":{"binary_data_output":"yes"},"inputs":[]}`,
	`{"parameters":{"a":1,"a":2},"inputs":[]}`,
	`{"parameters":{"a":{}},"inputs":[]}`,
	`{"inputs":[]}`,
	`{}`,
	`[]`,
	``,
	`{"id":5,"inputs":[]}`,
	`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["` + strings.Repeat("é", 40) + `"]}]}`,
}

// TestFastDecodeKServe: the article's request takes the fast path, and on
// every seed the fast path either declines or agrees with the general one.
func TestFastDecodeKServe(t *testing.T) {
	call, ok := fastDecodeKServe([]byte(articleBody), testFastLimits)
	if !ok {
		t.Fatal("the article's request did not take the fast path")
	}
	want := &inferCall{inputs: []callInput{{name: "text", datatype: "BYTES", shape: []int64{1, 1}, texts: []string{"酒店很好"}}}, outputs: []callOutput{{name: "embeddings"}}}
	if !reflect.DeepEqual(call, want) {
		t.Fatalf("got %+v, want %+v", call, want)
	}
	fast := 0
	for _, s := range fastSeeds {
		if compareDecoders(t, []byte(s), testFastLimits) {
			fast++
		}
	}
	if fast < 6 {
		t.Errorf("only %d seeds took the fast path", fast)
	}
	// Limits reached: the general path answers.
	for _, lim := range []fastLimits{{depth: 3, keys: 64, inputs: 8, outputs: 8, elements: 32, stringBytes: 1 << 20},
		{depth: 32, keys: 3, inputs: 8, outputs: 8, elements: 32, stringBytes: 1 << 20},
		{depth: 32, keys: 64, inputs: 8, outputs: 8, elements: 1, stringBytes: 1 << 20},
		{depth: 32, keys: 64, inputs: 8, outputs: 8, elements: 32, stringBytes: 3},
		{depth: 32, keys: 64, inputs: 0, outputs: 8, elements: 32, stringBytes: 1 << 20}} {
		body := `{"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["abcd","e"]}]}`
		if _, ok := fastDecodeKServe([]byte(body), lim); ok {
			t.Errorf("limits %+v: the fast path took the request", lim)
		}
		compareDecoders(t, []byte(body), lim)
	}
}

// compareDecoders checks that whatever the fast path accepts, the general
// path accepts and decodes alike; it reports whether the fast path took it.
func compareDecoders(t *testing.T, body []byte, lim fastLimits) bool {
	t.Helper()
	fast, ok := fastDecodeKServe(body, lim)
	if !ok {
		return false
	}
	slow, err := slowDecodeKServe(body, lim)
	if err != nil {
		t.Fatalf("%q: the fast path accepted what the general path refuses: %v", body, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: fast %+v, general %+v", body, fast, slow)
	}
	return true
}

// FuzzFastKServeDecode is the differential fuzz of the fast decoder
// against the general path (scanJSON + encoding/json): on any body, the
// fast path either declines or decodes exactly what the general path does.
func FuzzFastKServeDecode(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		compareDecoders(t, body, testFastLimits)
		compareDecoders(t, body, fastLimits{depth: 4, keys: 4, inputs: 1, outputs: 1, elements: 2, stringBytes: 8})
	})
}
