package serve

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// sdkError is what the official SDKs make of an error answer: openai-node's
// APIError takes `error` from the body and reads message, type, param and
// code from it; its message is "<status> <error.message>".
type sdkError struct {
	Status  int
	Message string
	Type    *string
	Param   *string
	Code    *string
}

func openAIErrorBody(t testing.TB, b []byte) sdkError {
	t.Helper()
	var body struct {
		Error *struct {
			Message *string `json:"message"`
			Type    *string `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil || body.Error.Message == nil || body.Error.Type == nil {
		t.Fatalf("error body %s is not OpenAI's {\"error\": {\"message\", \"type\", \"param\", \"code\"}}", b)
	}
	var raw map[string]map[string]json.RawMessage
	_ = json.Unmarshal(b, &raw)
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][k]; !ok {
			t.Fatalf("error body %s has no %q (OpenAI sends null, not nothing)", b, k)
		}
	}
	e := body.Error
	return sdkError{Message: *e.Message, Type: e.Type, Param: e.Param, Code: e.Code}
}

func str(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

func TestOpenAIErrorShape(t *testing.T) {
	ts := startRepoServer(t, 4, 1000, Config{})
	tests := []struct {
		name, method, path, body string
		status                   int
		typ, param, code         string
	}{
		{"unknown model", "POST", "/v1/embeddings", `{"model":"nope","input":"x"}`, 404, "invalid_request_error", "model", "model_not_found"},
		{"bad dimensions", "POST", "/v1/embeddings", `{"model":"m3e","input":"x","dimensions":0}`, 400, "invalid_request_error", "dimensions", "null"},
		{"empty input", "POST", "/v1/embeddings", `{"model":"m3e","input":[]}`, 400, "invalid_request_error", "input", "null"},
		{"bad encoding_format", "POST", "/v1/embeddings", `{"model":"m3e","input":"x","encoding_format":"int8"}`, 400, "invalid_request_error", "encoding_format", "null"},
		{"malformed JSON", "POST", "/v1/embeddings", `{"input":`, 400, "invalid_request_error", "null", "null"},
		{"model lookup", "GET", "/v1/models/nope", "", 404, "invalid_request_error", "model", "model_not_found"},
		{"unknown endpoint", "POST", "/v1/chat/completions", `{}`, 404, "invalid_request_error", "null", "unknown_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, b := ts.do(t, tc.method, tc.path, []byte(tc.body), nil)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, b)
			}
			e := openAIErrorBody(t, b)
			if str(e.Type) != tc.typ || str(e.Param) != tc.param || str(e.Code) != tc.code {
				t.Fatalf("type/param/code = %s/%s/%s, want %s/%s/%s (%s)", str(e.Type), str(e.Param), str(e.Code), tc.typ, tc.param, tc.code, b)
			}
		})
	}
}

func TestOpenAIAuthErrorShape(t *testing.T) {
	ts := startRepoServer(t, 4, 1000, Config{APIKey: "k"})
	code, h, b := ts.do(t, "POST", "/v1/embeddings", []byte(`{"input":"x"}`), nil)
	e := openAIErrorBody(t, b)
	if code != http.StatusUnauthorized || str(e.Code) != "invalid_api_key" || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("%d %s", code, b)
	}
	// Non-OpenAI routes keep the KServe shape.
	code, _, b = ts.do(t, "POST", "/v2/models/m3e/infer", []byte(inferBody("x")), nil)
	if code != http.StatusUnauthorized || !strings.Contains(errorBody(t, b), "API key") {
		t.Fatalf("%d %s", code, b)
	}
}

func TestOpenAITokenIDsAndUsage(t *testing.T) {
	ts := startRepoServer(t, 4, 1000, Config{})
	ref := loadReference(t)
	tok, err := tokenizer.Load("../../testdata/m3e-tiny/hf")
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{ref[0].Text, ref[1].Text, ref[2].Text}
	var ids [][]int32
	want := 0
	for _, s := range texts {
		ids = append(ids, tok.Encode(s))
		want += len(ids[len(ids)-1])
	}
	post := func(body any) openAIResponse {
		t.Helper()
		raw, _ := json.Marshal(body)
		code, b := ts.post(t, "/v1/embeddings", string(raw))
		var r openAIResponse
		if code != http.StatusOK || json.Unmarshal(b, &r) != nil {
			t.Fatalf("%d %s", code, b)
		}
		return r
	}
	byText := post(map[string]any{"model": "m3e", "input": texts})
	byIDs := post(map[string]any{"model": "m3e", "input": ids})
	one := post(map[string]any{"model": "m3e", "input": ids[0]})
	if byText.Usage.PromptTokens != want || byText.Usage.TotalTokens != want || byIDs.Usage.PromptTokens != want {
		t.Fatalf("usage text %+v ids %+v, want %d tokens", byText.Usage, byIDs.Usage, want)
	}
	if one.Usage.PromptTokens != len(ids[0]) || len(one.Data) != 1 {
		t.Fatalf("single token-id input: %+v", one)
	}
	for i := range texts {
		var a, b []float32
		_ = json.Unmarshal(byText.Data[i].Embedding, &a)
		_ = json.Unmarshal(byIDs.Data[i].Embedding, &b)
		assertClose(t, "token ids vs text", b, a)
		assertClose(t, "token ids vs reference", b, ref[i].Embedding)
	}
	code, b := ts.get(t, "/v1/models/m3e")
	var m openAIModel
	if code != http.StatusOK || json.Unmarshal(b, &m) != nil || m.ID != "m3e" || m.Object != "model" {
		t.Fatalf("%d %s", code, b)
	}
	// An id outside the vocabulary is the client's mistake, not a crash.
	code, b = ts.post(t, "/v1/embeddings", `{"model":"m3e","input":[[101,99999999]]}`)
	if code != http.StatusBadRequest || str(openAIErrorBody(t, b).Param) != "null" && !strings.Contains(string(b), "vocabulary") {
		t.Fatalf("%d %s", code, b)
	}
}
