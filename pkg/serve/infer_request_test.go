package serve

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testSpec = modelSpec{name: "m3e", version: "1", input: "text", output: "embeddings", maxBatchSize: 4, dim: 8}

// bytesTensor serialises elements as Triton's binary BYTES tensor.
func bytesTensor(elems ...string) []byte {
	var b []byte
	for _, e := range elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// binaryBody builds a binary-extension body: JSON header then data.
func binaryBody(header string, data []byte) ([]byte, string) {
	return append([]byte(header), data...), strconv.Itoa(len(header))
}

func TestDecodeAndValidateAccepts(t *testing.T) {
	bin, hlen := binaryBody(`{"inputs":[{"name":"text","shape":[2,1],"datatype":"BYTES","parameters":{"binary_data_size":20}}],"outputs":[{"name":"embeddings","parameters":{"binary_data":true}}]}`, bytesTensor("hello", "世界!"))
	tests := []struct {
		name       string
		body       string
		headerLen  string
		wantTexts  []string
		wantBinary bool
		wantID     string
		wantTO     time.Duration
	}{
		{name: "article client request", body: `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["酒店很好"]}],"outputs":[{"name":"embeddings","shape":[1,768]}]}`, wantTexts: []string{"酒店很好"}},
		{name: "flat data shape [N]", body: `{"inputs":[{"name":"text","datatype":"BYTES","shape":[3],"data":["a","b","c"]}]}`, wantTexts: []string{"a", "b", "c"}},
		{name: "nested data shape [N,1]", body: `{"inputs":[{"name":"text","datatype":"BYTES","shape":[2,1],"data":[["a"],["b"]]}]}`, wantTexts: []string{"a", "b"}},
		{name: "id echoed and timeout read", body: `{"id":"req-7","parameters":{"timeout":1500},"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}]}`, wantTexts: []string{"x"}, wantID: "req-7", wantTO: 1500 * time.Microsecond},
		{name: "binary_data_output parameter", body: `{"parameters":{"binary_data_output":true},"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}]}`, wantTexts: []string{"x"}, wantBinary: true},
		{name: "output binary_data false wins over request", body: `{"parameters":{"binary_data_output":true},"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}],"outputs":[{"name":"embeddings","parameters":{"binary_data":false}}]}`, wantTexts: []string{"x"}},
		{name: "binary tensor input and output", body: string(bin), headerLen: hlen, wantTexts: []string{"hello", "世界!"}, wantBinary: true},
		{name: "empty text is a text", body: `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":[""]}]}`, wantTexts: []string{""}},
		{name: "unknown parameters ignored", body: `{"parameters":{"priority":1,"x":"y"},"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}]}`, wantTexts: []string{"x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			call, err := decodeHTTPInfer([]byte(tc.body), tc.headerLen)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			plan, err := validate(call, testSpec)
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if strings.Join(plan.texts, "|") != strings.Join(tc.wantTexts, "|") || len(plan.texts) != len(tc.wantTexts) {
				t.Errorf("texts = %q, want %q", plan.texts, tc.wantTexts)
			}
			if plan.binary != tc.wantBinary || plan.id != tc.wantID || plan.timeout != tc.wantTO {
				t.Errorf("plan = binary %v id %q timeout %v; want %v %q %v", plan.binary, plan.id, plan.timeout, tc.wantBinary, tc.wantID, tc.wantTO)
			}
		})
	}
}

func TestDecodeAndValidateRejects(t *testing.T) {
	one := func(tensor string) string { return `{"inputs":[` + tensor + `]}` }
	bin, hlen := binaryBody(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}`, []byte{5, 0, 0, 0, 'a', 'b'})
	trunc, truncLen := binaryBody(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}`, []byte{5, 0, 0, 0, 'a', 'b'})
	badUTF8, badUTF8Len := binaryBody(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}`, bytesTensor("\xfe"))
	extra, extraLen := binaryBody(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["x"]}]}`, []byte{1, 2})
	tests := []struct {
		name, body, headerLen string
		wantKind              errorKind
		wantMsg               string
	}{
		{"empty body", ``, "", kindInvalidInput, "empty"},
		{"malformed JSON", `{"inputs":[`, "", kindInvalidInput, "malformed JSON"},
		{"not an object", `[1,2]`, "", kindInvalidInput, "malformed request"},
		{"trailing data", `{"inputs":[]} {}`, "", kindInvalidInput, "after top-level value"},
		{"invalid UTF-8 in JSON", "{\"inputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"\xff\"]}]}", "", kindInvalidInput, "UTF-8"},
		{"no inputs", `{"inputs":[]}`, "", kindInvalidInput, "no inputs"},
		{"wrong tensor name", one(`{"name":"input_ids","datatype":"BYTES","shape":[1],"data":["x"]}`), "", kindInvalidInput, `unexpected input "input_ids"`},
		{"two text inputs", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]},{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}]}`, "", kindInvalidInput, "given 2 times"},
		{"wrong datatype", one(`{"name":"text","datatype":"INT64","shape":[1],"data":[1]}`), "", kindInvalidInput, `datatype "INT64"`},
		{"number in BYTES data", one(`{"name":"text","datatype":"BYTES","shape":[1],"data":[1]}`), "", kindInvalidInput, "must be strings"},
		{"object in data", one(`{"name":"text","datatype":"BYTES","shape":[1],"data":[{"a":1}]}`), "", kindInvalidInput, "objects"},
		{"data not an array", one(`{"name":"text","datatype":"BYTES","shape":[1],"data":"x"}`), "", kindInvalidInput, "array of strings"},
		{"missing data", one(`{"name":"text","datatype":"BYTES","shape":[1]}`), "", kindInvalidInput, "no data"},
		{"missing shape", one(`{"name":"text","datatype":"BYTES","data":["x"]}`), "", kindInvalidInput, "no shape"},
		{"shape [1,2]", one(`{"name":"text","datatype":"BYTES","shape":[1,2],"data":["x","y"]}`), "", kindInvalidInput, "one text"},
		{"rank 3 shape", one(`{"name":"text","datatype":"BYTES","shape":[1,1,1],"data":["x"]}`), "", kindInvalidInput, "expected [N,1]"},
		{"negative dim", one(`{"name":"text","datatype":"BYTES","shape":[-1,1],"data":["x"]}`), "", kindInvalidInput, "negative"},
		{"zero rows", one(`{"name":"text","datatype":"BYTES","shape":[0,1],"data":[]}`), "", kindInvalidInput, "no texts"},
		{"data does not match shape", one(`{"name":"text","datatype":"BYTES","shape":[2,1],"data":["x"]}`), "", kindInvalidInput, "1 elements but its shape [2 1] holds 2"},
		{"more rows than max_batch_size", one(`{"name":"text","datatype":"BYTES","shape":[5],"data":["a","b","c","d","e"]}`), "", kindInvalidInput, "max_batch_size 4"},
		{"unknown requested output", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}],"outputs":[{"name":"pooler"}]}`, "", kindInvalidInput, `unknown requested output "pooler"`},
		{"classification unsupported", `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}],"outputs":[{"name":"embeddings","parameters":{"classification":2}}]}`, "", kindUnsupported, "classification"},
		{"timeout not a number", `{"parameters":{"timeout":"soon"},"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}]}`, "", kindInvalidInput, `"timeout" must be a non-negative integer`},
		{"id not a string", `{"id":5,"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["x"]}]}`, "", kindInvalidInput, "id must be a string"},
		{"header length past body", `{}`, "99", kindInvalidInput, headerContentLength},
		{"binary size without header", one(`{"name":"text","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":4}}`), "", kindInvalidInput, "no Inference-Header-Content-Length"},
		{"binary size past data", string(bin), hlen, kindInvalidInput, "only 6 bytes"},
		{"binary element truncated", string(trunc), truncLen, kindInvalidInput, "claims 5 bytes"},
		{"invalid UTF-8 in binary element", string(badUTF8), badUTF8Len, kindInvalidInput, "not valid UTF-8"},
		{"unclaimed binary bytes", string(extra), extraLen, kindInvalidInput, "no input claims"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			call, err := decodeHTTPInfer([]byte(tc.body), tc.headerLen)
			if err == nil {
				_, err = validate(call, testSpec)
			}
			if err == nil {
				t.Fatal("accepted; want an error")
			}
			kind, msg, _ := classify(err)
			if kind != tc.wantKind || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("got kind %d %q; want kind %d containing %q", kind, msg, tc.wantKind, tc.wantMsg)
			}
		})
	}
}

func TestErrorTableCoversEveryKind(t *testing.T) {
	for k := kindInvalidInput; k <= kindUnsupported; k++ {
		st, ok := errorTable[k]
		if !ok || st.http < 400 {
			t.Errorf("kind %d has no 4xx/5xx row", k)
		}
	}
	if kind, _, _ := classify(errors.New("boom")); kind != kindInternal {
		t.Errorf("unknown error classified as %d, want internal", kind)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\", "ctl\x00\x1f\n\t", "中文 emoji 😀", "bad\xffbyte", "\u2028\u2029"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q → %s: not JSON: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); got != want {
			t.Errorf("%q round-tripped to %q", s, got)
		}
	}
}

func TestAppendFloat32sRoundTrips(t *testing.T) {
	v := []float32{0, -0.5, 1e-30, 3.4028235e38, 0.014592116, float32(math.Inf(1))}
	var got []*float32
	if err := json.Unmarshal(appendFloat32s(nil, v), &got); err != nil {
		t.Fatal(err)
	}
	for i := range v[:5] {
		if *got[i] != v[i] {
			t.Errorf("element %d: %v != %v", i, *got[i], v[i])
		}
	}
	if got[5] != nil {
		t.Errorf("Inf encoded as %v, want null", *got[5])
	}
}

// FuzzDecodeHTTPInfer feeds arbitrary bodies (JSON and binary extension) to
// the decoder and validator: they may reject, never panic, and whatever they
// accept is valid UTF-8 and within the model's limits.
func FuzzDecodeHTTPInfer(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["酒店很好"]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":[["a"],["b"]]}],"outputs":[{"name":"embeddings"}]}`), -1)
	b, _ := binaryBody(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}`, bytesTensor("x"))
	f.Add(b, 100)
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		h := ""
		if headerLen >= 0 {
			h = strconv.Itoa(headerLen)
		}
		call, err := decodeHTTPInfer(body, h)
		if err != nil {
			return
		}
		plan, err := validate(call, testSpec)
		if err != nil {
			return
		}
		if len(plan.texts) == 0 || len(plan.texts) > testSpec.maxBatchSize {
			t.Fatalf("accepted %d texts", len(plan.texts))
		}
		for _, s := range plan.texts {
			if !utf8.ValidString(s) {
				t.Fatalf("accepted invalid UTF-8 %q", s)
			}
		}
	})
}
