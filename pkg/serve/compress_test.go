package serve

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

func compress(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate": // tritonclient.http: zlib.compress
		w = zlib.NewWriter(&buf)
	case "raw-deflate":
		w, _ = flate.NewWriter(&buf, flate.BestCompression)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCompressedRequests(t *testing.T) {
	const limit = 1 << 20
	ts := startRepoServer(t, 4, 1000, Config{MaxRequestBytes: limit})
	ref := loadReference(t)
	plain := []byte(inferBody(ref[0].Text))

	for _, enc := range []string{"gzip", "deflate", "raw-deflate"} {
		t.Run(enc, func(t *testing.T) {
			header := enc
			if enc == "raw-deflate" {
				header = "deflate"
			}
			code, _, b := ts.do(t, "POST", "/v2/models/m3e/infer", compress(t, enc, plain), map[string]string{"Content-Encoding": header})
			var r kserveResponse
			if code != http.StatusOK || json.Unmarshal(b, &r) != nil {
				t.Fatalf("%d %s", code, b)
			}
			assertClose(t, enc, r.Outputs[0].Data, ref[0].Embedding)
		})
	}
	t.Run("OpenAI and TEI bodies too", func(t *testing.T) {
		body := compress(t, "gzip", []byte(`{"model":"m3e","input":"x"}`))
		if code, _, b := ts.do(t, "POST", "/v1/embeddings", body, map[string]string{"Content-Encoding": "gzip"}); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
		body = compress(t, "gzip", []byte(`{"inputs":"x"}`))
		if code, _, b := ts.do(t, "POST", "/embed", body, map[string]string{"Content-Encoding": "gzip"}); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	})
	t.Run("zip bomb is 413", func(t *testing.T) {
		// 4 MiB of one JSON string (4x the limit) inflates from about 4 KiB;
		// the server stops reading at the limit whatever the inflated size.
		bomb := append([]byte(`{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["`), bytes.Repeat([]byte("a"), 4<<20)...)
		bomb = append(bomb, `"]}]}`...)
		for _, enc := range []string{"gzip", "deflate"} {
			z := compress(t, enc, bomb)
			if len(z) > limit/16 {
				t.Fatalf("compressed bomb is %d bytes; the test needs it under the limit", len(z))
			}
			code, _, b := ts.do(t, "POST", "/v2/models/m3e/infer", z, map[string]string{"Content-Encoding": enc})
			if code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s bomb: %d %s", enc, code, b)
			}
			mustContain(t, errorBody(t, b), "inflates to more than")
		}
	})
	t.Run("corrupt and unknown encodings", func(t *testing.T) {
		code, _, b := ts.do(t, "POST", "/v2/models/m3e/infer", plain, map[string]string{"Content-Encoding": "gzip"})
		if code != http.StatusBadRequest {
			t.Fatalf("plain body labelled gzip: %d %s", code, b)
		}
		mustContain(t, errorBody(t, b), "not valid gzip")
		code, _, b = ts.do(t, "POST", "/v2/models/m3e/infer", plain, map[string]string{"Content-Encoding": "br"})
		if code != http.StatusBadRequest {
			t.Fatalf("br: %d %s", code, b)
		}
		mustContain(t, errorBody(t, b), "not supported")
	})
}
