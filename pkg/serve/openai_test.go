package serve

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"testing"
)

type openAIResponse struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

func TestOpenAIEmbeddings(t *testing.T) {
	ts := startRepoServer(t, 4, 1000, Config{})
	ref := loadReference(t)

	post := func(t *testing.T, body any) (int, openAIResponse, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		code, out := ts.post(t, "/v1/embeddings", string(b))
		var r openAIResponse
		if code == http.StatusOK {
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
		}
		return code, r, out
	}

	t.Run("string input, float", func(t *testing.T) {
		code, r, b := post(t, map[string]any{"model": "m3e", "input": ref[0].Text})
		if code != http.StatusOK || r.Object != "list" || r.Model != "m3e" || len(r.Data) != 1 || r.Usage.PromptTokens != 6 || r.Usage.TotalTokens != 6 {
			t.Fatalf("%d %s", code, b)
		}
		var v []float32
		if err := json.Unmarshal(r.Data[0].Embedding, &v); err != nil {
			t.Fatal(err)
		}
		assertClose(t, "openai float", v, ref[0].Embedding)
	})

	t.Run("list longer than max_batch_size, base64", func(t *testing.T) {
		var texts []string
		for _, c := range ref[:10] {
			texts = append(texts, c.Text)
		}
		code, r, b := post(t, map[string]any{"model": "m3e", "input": texts, "encoding_format": "base64"})
		if code != http.StatusOK || len(r.Data) != 10 {
			t.Fatalf("%d %s", code, b)
		}
		for i, d := range r.Data {
			if d.Index != i || d.Object != "embedding" {
				t.Fatalf("item %d: %+v", i, d)
			}
			var s string
			if err := json.Unmarshal(d.Embedding, &s); err != nil {
				t.Fatal(err)
			}
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(raw) != 4*tinyDim {
				t.Fatalf("base64 %q: %v", s, err)
			}
			v := make([]float32, tinyDim)
			for j := range v {
				v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
			assertClose(t, "openai base64 "+strconv.Itoa(i), v, ref[i].Embedding)
		}
	})

	t.Run("dimensions truncates and re-normalises", func(t *testing.T) {
		code, r, b := post(t, map[string]any{"input": []string{ref[2].Text}, "dimensions": 16})
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, b)
		}
		var v []float32
		_ = json.Unmarshal(r.Data[0].Embedding, &v)
		want := append([]float32(nil), ref[2].Embedding[:16]...)
		normalize(want)
		assertClose(t, "dimensions 16", v, want)
	})

	t.Run("bad requests", func(t *testing.T) {
		tests := []struct {
			name string
			body string
			want int
			msg  string
		}{
			{"no input", `{"model":"m3e"}`, 400, "input is required"},
			{"empty list", `{"model":"m3e","input":[]}`, 400, "empty"},
			{"negative token id", `{"model":"m3e","input":[[101,-1]]}`, 400, "token id"},
			{"mixed list", `{"model":"m3e","input":["a",[101]]}`, 400, "only strings"},
			{"bad encoding", `{"model":"m3e","input":"x","encoding_format":"int8"}`, 400, "encoding_format"},
			{"dimensions too large", `{"model":"m3e","input":"x","dimensions":65}`, 400, "dimensions"},
			{"unknown model", `{"model":"gpt","input":"x"}`, 404, "gpt"},
			{"malformed", `{"input":`, 400, "malformed"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, b := ts.post(t, "/v1/embeddings", tc.body)
				if code != tc.want {
					t.Fatalf("status %d want %d: %s", code, tc.want, b)
				}
				mustContain(t, openAIErrorBody(t, b).Message, tc.msg)
			})
		}
	})

	t.Run("models list", func(t *testing.T) {
		code, b := ts.get(t, "/v1/models")
		var r struct {
			Data []openAIModel `json:"data"`
		}
		if code != http.StatusOK || json.Unmarshal(b, &r) != nil || len(r.Data) != 1 || r.Data[0].ID != "m3e" {
			t.Fatalf("%d %s", code, b)
		}
	})
}

// FuzzOpenAIInputs: any `input` value is either rejected or read as texts.
func FuzzOpenAIInputs(f *testing.F) {
	for _, s := range []string{`"x"`, `["a","b"]`, `[[1,2]]`, `[]`, `null`, `{"a":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := openAIInputs(raw)
		if err == nil && in.len() == 0 {
			t.Fatal("accepted no inputs")
		}
		for _, row := range in.ids {
			if len(row) == 0 {
				t.Fatal("accepted an empty row of token ids")
			}
		}
	})
}
