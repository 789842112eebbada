package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/engine/null"
	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// exponentText is the null engine with its JSON text written in %e form
// ("-3.6123455e-02"): the same float32s in other bytes, so that an answer
// shows whether the engine's text (not the server's formatting) went out.
type exponentText struct{ *null.Engine }

func (e exponentText) EmbedText(ctx context.Context, b *engine.Batch, dst []float32, txt *engine.Text) ([]float32, error) {
	txt.Reset()
	dst, err := e.EmbedInto(ctx, b, dst)
	if err != nil {
		return nil, err
	}
	dim := e.Info().Dim
	for r := range b.Rows() {
		var row []byte
		for i, f := range dst[r*dim : (r+1)*dim] {
			if i > 0 {
				row = append(row, ',')
			}
			row = strconv.AppendFloat(row, float64(f), 'e', 8, 32) // nine digits: round-trips
		}
		txt.Rows = append(txt.Rows, row)
	}
	textsOut.Add(1)
	txt.Release = func() { textsOut.Add(-1) }
	return dst, nil
}

// textsOut counts exponentText's batches whose text was not released.
var textsOut atomic.Int32

func init() {
	engine.RegisterBackend("exponent-text", func(m *engine.Model, o engine.Options) (engine.Engine, error) {
		e, err := null.Open(m, o)
		if err != nil {
			return nil, err
		}
		return exponentText{e.(*null.Engine)}, nil
	}, nil)
}

// startEngineServer serves model "m3e" of the tiny model's shape on the
// named engine.
func startEngineServer(t *testing.T, eng string) *testServer {
	t.Helper()
	root := t.TempDir()
	writeModel(t, root, "m3e", "1", modelConfig("m3e", 8, 100))
	b, err := os.ReadFile("../../testdata/m3e-tiny/hf/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "m3e", "1", "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return startServer(t, serverOpts{repo: repository.Config{Root: root, Engine: eng}})
}

// TestEngineTextGoesOutAsWritten: JSON answers carry the engine's text of
// the embeddings where it wrote one (KServe JSON, OpenAI float), and the
// server's own formatting where the answer is binary, base64 or shortened;
// the numbers are the same either way, and the null engine's text equals
// the server's formatting byte for byte.
func TestEngineTextGoesOutAsWritten(t *testing.T) {
	exp := startEngineServer(t, "exponent-text")
	t.Setenv("M3ECTL_NULL_TEXT", "0")
	plain := startEngineServer(t, "null")
	t.Setenv("M3ECTL_NULL_TEXT", "1")
	withText := startEngineServer(t, "null")

	kserve := []byte(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[3,1],"data":["酒店很好","今天天气不错","hello"]}]}`)
	cases := []struct {
		name, path string
		body       []byte
		header     map[string]string
		engineText bool // the answer carries the engine's text
	}{
		{"kserve json", "/v2/models/m3e/infer", kserve, nil, true},
		{"kserve binary", "/v2/models/m3e/infer", []byte(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["hello"]}],"outputs":[{"name":"embeddings","parameters":{"binary_data":true}}]}`), nil, false},
		{"openai float", "/v1/embeddings", []byte(`{"model":"m3e","input":["酒店很好","hello"]}`), nil, true},
		{"openai dimensions", "/v1/embeddings", []byte(`{"model":"m3e","input":["酒店很好"],"dimensions":16}`), nil, false},
		{"openai base64", "/v1/embeddings", []byte(`{"model":"m3e","input":["hello"],"encoding_format":"base64"}`), nil, false},
	}
	t.Cleanup(func() {
		if n := textsOut.Load(); n != 0 {
			t.Errorf("%d batches' engine text never released", n)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			post := func(ts *testServer) []byte {
				code, _, b := ts.do(t, "POST", c.path, c.body, c.header)
				if code != 200 {
					t.Fatalf("%s: %d %s", c.path, code, b)
				}
				return b
			}
			want, got, same := post(plain), post(exp), post(withText)
			if !bytes.Equal(same, want) {
				t.Errorf("the null engine's text changed the answer:\n%.300s\nwant\n%.300s", same, want)
			}
			if hasExp := bytes.Contains(got, []byte("e-0")); hasExp != c.engineText {
				t.Fatalf("answer carries the engine's %%e text: %v, want %v: %.300s", hasExp, c.engineText, got)
			}
			if !c.engineText {
				if !bytes.Equal(got, want) {
					t.Errorf("answer %.300s, want %.300s", got, want)
				}
				return
			}
			if a, b := numbers(t, got), numbers(t, want); !equalFloats(a, b) {
				t.Errorf("the engine's text reads back as %d other numbers than %d formatted ones", len(a), len(b))
			}
		})
	}
}

// numbers decodes the embeddings of a KServe or OpenAI JSON answer.
func numbers(t *testing.T, b []byte) []float32 {
	t.Helper()
	var v struct {
		Outputs []struct{ Data []float32 }
		Data    []struct{ Embedding []float32 }
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %.200s", err, b)
	}
	var out []float32
	for _, o := range v.Outputs {
		out = append(out, o.Data...)
	}
	for _, d := range v.Data {
		out = append(out, d.Embedding...)
	}
	return out
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
