package serve

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

// teiSpec is TEI's own OpenAPI file (testdata/tei/openapi.json).
type teiSpec struct {
	Paths map[string]map[string]struct {
		RequestBody *struct {
			Content map[string]struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"content"`
		} `json:"requestBody"`
		Responses map[string]struct {
			Content map[string]struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

func loadTEISpec(t testing.TB) *teiSpec {
	t.Helper()
	b, err := os.ReadFile("../../testdata/tei/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var s teiSpec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// schema is the subset of OpenAPI 3.0 schemas TEI's file uses.
type schema struct {
	Ref        string                     `json:"$ref"`
	Type       string                     `json:"type"`
	Enum       []string                   `json:"enum"`
	Required   []string                   `json:"required"`
	Properties map[string]json.RawMessage `json:"properties"`
	Items      json.RawMessage            `json:"items"`
	OneOf      []json.RawMessage          `json:"oneOf"`
	AllOf      []json.RawMessage          `json:"allOf"`
	Nullable   bool                       `json:"nullable"`
	Minimum    *float64                   `json:"minimum"`
	MinItems   *int                       `json:"minItems"`
	MaxItems   *int                       `json:"maxItems"`
}

// check reports why v does not conform to the schema raw, or nil.
func (s *teiSpec) check(raw json.RawMessage, v any, at string) error {
	var sc schema
	if err := json.Unmarshal(raw, &sc); err != nil {
		return err
	}
	if sc.Ref != "" {
		name := strings.TrimPrefix(sc.Ref, "#/components/schemas/")
		return s.check(s.Components.Schemas[name], v, at)
	}
	if v == nil {
		if sc.Nullable {
			return nil
		}
		return fmt.Errorf("%s: null where the schema does not allow it", at)
	}
	for _, a := range sc.AllOf {
		if err := s.check(a, v, at); err != nil {
			return err
		}
	}
	if len(sc.OneOf) > 0 {
		n := 0
		for _, o := range sc.OneOf {
			if s.check(o, v, at) == nil {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("%s: %v matches none of oneOf", at, v)
		}
	}
	if len(sc.Enum) > 0 {
		str, _ := v.(string)
		ok := false
		for _, e := range sc.Enum {
			ok = ok || e == str
		}
		if !ok {
			return fmt.Errorf("%s: %v is not one of %v", at, v, sc.Enum)
		}
	}
	switch sc.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want object", at, v)
		}
		for _, r := range sc.Required {
			if _, ok := m[r]; !ok {
				return fmt.Errorf("%s: required field %q missing", at, r)
			}
		}
		for k, p := range sc.Properties {
			if x, ok := m[k]; ok {
				if err := s.check(p, x, at+"."+k); err != nil {
					return err
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want array", at, v)
		}
		if (sc.MinItems != nil && len(a) < *sc.MinItems) || (sc.MaxItems != nil && len(a) > *sc.MaxItems) {
			return fmt.Errorf("%s: %d items out of bounds", at, len(a))
		}
		for i, x := range a {
			if err := s.check(sc.Items, x, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %T, want string", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want boolean", at, v)
		}
	case "integer", "number":
		f, ok := v.(float64)
		if !ok {
			return fmt.Errorf("%s: %T, want %s", at, v, sc.Type)
		}
		if sc.Type == "integer" && f != math.Trunc(f) {
			return fmt.Errorf("%s: %v is not an integer", at, f)
		}
		if sc.Minimum != nil && f < *sc.Minimum {
			return fmt.Errorf("%s: %v below minimum %v", at, f, *sc.Minimum)
		}
	}
	return nil
}

// call sends body to a TEI route and checks the request against the
// route's request schema and the answer against the schema of the status
// it got.
func (s *teiSpec) call(t *testing.T, ts *testServer, method, path, body string) (int, any) {
	t.Helper()
	op, ok := s.Paths[path][strings.ToLower(method)]
	if !ok {
		t.Fatalf("%s %s is not in TEI's OpenAPI file", method, path)
	}
	if body != "" && op.RequestBody != nil {
		var req any
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			t.Fatal(err)
		}
		if err := s.check(op.RequestBody.Content["application/json"].Schema, req, "request"); err != nil {
			t.Fatalf("test request does not follow TEI's schema: %v", err)
		}
	}
	code, _, b := ts.do(t, method, path, []byte(body), map[string]string{"Content-Type": "application/json"})
	resp, ok := op.Responses[fmt.Sprint(code)]
	if !ok {
		t.Fatalf("%s %s answered %d, a status TEI's OpenAPI file does not list: %s", method, path, code, b)
	}
	var v any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	if c, ok := resp.Content["application/json"]; ok {
		if err := s.check(c.Schema, v, "response"); err != nil {
			t.Fatalf("%s %s answer %s does not follow TEI's schema: %v", method, path, b, err)
		}
	}
	return code, v
}

func TestTEIAPI(t *testing.T) {
	spec := loadTEISpec(t)
	ts := startRepoServer(t, 4, 1000, Config{})
	ref := loadReference(t)
	text := func(i int) string { b, _ := json.Marshal(ref[i].Text); return string(b) }
	floats := func(v any) []float32 {
		var out []float32
		for _, x := range v.([]any) {
			out = append(out, float32(x.(float64)))
		}
		return out
	}

	t.Run("embed string and list, as huggingface_hub sends them", func(t *testing.T) {
		code, v := spec.call(t, ts, "POST", "/embed", `{"inputs":`+text(0)+`}`)
		if code != 200 {
			t.Fatalf("%d %v", code, v)
		}
		assertClose(t, "embed", floats(v.([]any)[0]), ref[0].Embedding)
		code, v = spec.call(t, ts, "POST", "/embed", `{"inputs":[`+text(1)+`,`+text(2)+`],"normalize":true,"truncate":true,"truncation_direction":"Right"}`)
		if code != 200 || len(v.([]any)) != 2 {
			t.Fatalf("%d %v", code, v)
		}
		assertClose(t, "embed batch", floats(v.([]any)[1]), ref[2].Embedding)
	})
	t.Run("huggingface_hub feature_extraction posts to the URL itself", func(t *testing.T) {
		// InferenceClient(model=url).feature_extraction(text, normalize=True,
		// truncate=True, truncation_direction="Right") sends this body to POST /.
		body := `{"inputs":` + text(0) + `,"normalize":true,"truncate":true,"truncation_direction":"Right"}`
		code, _, b := ts.do(t, "POST", "/", []byte(body), map[string]string{"Content-Type": "application/json"})
		var v [][]float32
		if code != 200 || json.Unmarshal(b, &v) != nil || len(v) != 1 {
			t.Fatalf("%d %s", code, b)
		}
		assertClose(t, "POST /", v[0], ref[0].Embedding)
		if code, _, b := ts.do(t, "POST", "/", []byte(`{"inputs":[]}`), nil); code != 400 || !strings.Contains(string(b), `"error_type":"Empty"`) {
			t.Fatalf("POST / error: %d %s", code, b)
		}
		if code, _, _ := ts.do(t, "GET", "/", nil, nil); code != 200 {
			t.Fatalf("GET / (TEI health): %d", code)
		}
	})
	t.Run("embed dimensions re-normalises", func(t *testing.T) {
		code, v := spec.call(t, ts, "POST", "/embed", `{"inputs":`+text(0)+`,"dimensions":8}`)
		want := append([]float32(nil), ref[0].Embedding[:8]...)
		normalize(want)
		if code != 200 {
			t.Fatalf("%d %v", code, v)
		}
		assertClose(t, "dimensions", floats(v.([]any)[0]), want)
	})
	t.Run("similarity", func(t *testing.T) {
		body := `{"inputs":{"source_sentence":` + text(0) + `,"sentences":[` + text(0) + `,` + text(1) + `]}}`
		code, v := spec.call(t, ts, "POST", "/similarity", body)
		if code != 200 {
			t.Fatalf("%d %v", code, v)
		}
		got := floats(v)
		if math.Abs(float64(got[0])-1) > 1e-5 || got[1] >= got[0] {
			t.Fatalf("similarities %v", got)
		}
	})
	t.Run("tokenize and decode round trip", func(t *testing.T) {
		code, v := spec.call(t, ts, "POST", "/tokenize", `{"inputs":"酒店很好, Hello!"}`)
		if code != 200 {
			t.Fatalf("%d %v", code, v)
		}
		toks := v.([]any)[0].([]any)
		var ids []string
		for _, x := range toks {
			tk := x.(map[string]any)
			ids = append(ids, fmt.Sprint(tk["id"]))
			if tk["special"] == false {
				s, e := int(tk["start"].(float64)), int(tk["stop"].(float64))
				if "酒店很好, Hello!"[s:e] != tk["text"] {
					t.Fatalf("token %v: text is not input[start:stop]", tk)
				}
			}
		}
		if strings.Join(ids, ",") != "101,6983,2421,2523,1962,117,8701,106,102" {
			t.Fatalf("ids %v", ids)
		}
		code, v = spec.call(t, ts, "POST", "/decode", `{"ids":[`+strings.Join(ids, ",")+`]}`)
		if code != 200 || v.([]any)[0] != "酒 店 很 好, hello!" {
			t.Fatalf("%d %v", code, v)
		}
	})
	t.Run("info and health", func(t *testing.T) {
		code, v := spec.call(t, ts, "GET", "/info", "")
		if code != 200 || v.(map[string]any)["model_id"] != "m3e" || v.(map[string]any)["max_client_batch_size"] != 4.0 {
			t.Fatalf("%d %v", code, v)
		}
		if code, _ := spec.call(t, ts, "GET", "/health", ""); code != 200 {
			t.Fatalf("health %d", code)
		}
	})
	t.Run("errors in TEI's shape and status", func(t *testing.T) {
		long := strings.Repeat("好", 600)
		tests := []struct {
			name, path, body string
			status           int
			errType          string
		}{
			{"empty batch", "/embed", `{"inputs":[]}`, 400, "Empty"},
			{"empty text", "/embed", `{"inputs":""}`, 400, "Empty"},
			{"too long, truncation off", "/embed", `{"inputs":"` + long + `","truncate":false}`, 422, "Validation"},
			{"batch over max_client_batch_size", "/embed", `{"inputs":["a","b","c","d","e"]}`, 422, "Validation"},
			{"embed_all empty", "/embed_all", `{"inputs":[]}`, 400, "Empty"},
			{"rerank", "/rerank", `{"query":"a","texts":["b"]}`, 424, "Backend"},
			{"predict", "/predict", `{"inputs":"a"}`, 424, "Backend"},
			{"embed_sparse", "/embed_sparse", `{"inputs":"a"}`, 424, "Backend"},
			{"empty sentences", "/similarity", `{"inputs":{"source_sentence":"a","sentences":[]}}`, 400, "Empty"},
			{"empty tokenize", "/tokenize", `{"inputs":[]}`, 400, "Empty"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, v := spec.call(t, ts, "POST", tc.path, tc.body)
				if code != tc.status || v.(map[string]any)["error_type"] != tc.errType || v.(map[string]any)["error"] == "" {
					t.Fatalf("%d %v, want %d %s", code, v, tc.status, tc.errType)
				}
			})
		}
	})
	t.Run("embed_all gives every token's state; their mean is the embedding", func(t *testing.T) {
		code, v := spec.call(t, ts, "POST", "/embed_all", `{"inputs":[`+text(0)+`,`+text(1)+`]}`)
		if code != 200 || len(v.([]any)) != 2 {
			t.Fatalf("%d %v", code, v)
		}
		for i := 0; i < 2; i++ {
			toks := v.([]any)[i].([]any)
			mean := make([]float32, tinyDim)
			for _, tk := range toks {
				for j, x := range floats(tk) {
					mean[j] += x / float32(len(toks))
				}
			}
			normalize(mean)
			assertClose(t, "mean of embed_all", mean, ref[i].Embedding)
		}
	})
	t.Run("truncation left keeps the end", func(t *testing.T) {
		long := strings.Repeat("好", 600) + "酒店"
		code, v := spec.call(t, ts, "POST", "/embed", `{"inputs":["`+long+`"],"truncate":true,"truncation_direction":"Left"}`)
		code2, v2 := spec.call(t, ts, "POST", "/embed", `{"inputs":["`+long+`"],"truncate":true}`)
		if code != 200 || code2 != 200 {
			t.Fatalf("%d %d", code, code2)
		}
		a, b := floats(v.([]any)[0]), floats(v2.([]any)[0])
		same := true
		for i := range a {
			same = same && a[i] == b[i]
		}
		if same {
			t.Fatal("left and right truncation gave the same vector")
		}
	})
}

// FuzzTEIInputs: any `inputs` value is refused or read as non-empty rows.
func FuzzTEIInputs(f *testing.F) {
	for _, s := range []string{`"x"`, `["a",[1,2]]`, `[1,2]`, `[[1],[2]]`, `[]`, `null`, `{"a":1}`, `[-1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rows, err := parseTEIInputs(raw)
		if err == nil && len(rows) == 0 {
			t.Fatal("accepted no inputs")
		}
		for _, r := range rows {
			if r.isIDs && len(r.ids) == 0 {
				t.Fatal("accepted an empty list of ids")
			}
		}
	})
}
