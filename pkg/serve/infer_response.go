package serve

import (
	"net/http"
	"strconv"

	"github.com/m3ectl/m3ectl/pkg/floatfmt"
)

// inferAnswer is a finished inference, ready to be written in any protocol.
type inferAnswer struct {
	model, version string
	id             string
	output         string
	rows, dim      int
	embeddings     []float32 // rows*dim, row-major
	// text is each row's embeddings as JSON numbers from the engine
	// (repository.Result.Text); nil, or a nil row, where they are
	// formatted here.
	text [][]byte
	// release gives text's memory back to the engine (nil: nothing to
	// give back); done calls it once the answer is written.
	release func()
	binary  bool
	tokens  int // tokens the model ran, for OpenAI usage
}

// appendKServeJSON appends the KServe v2 JSON response. With binary set the
// embeddings are left out of the JSON and described by binary_data_size; the
// caller appends them after it (Triton's binary tensor data extension).
func appendKServeJSON(b []byte, a *inferAnswer) []byte {
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, a.model)
	b = append(b, `,"model_version":`...)
	b = appendJSONString(b, a.version)
	if a.id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, a.id)
	}
	b = append(b, `,"outputs":[{"name":`...)
	b = appendJSONString(b, a.output)
	b = append(b, `,"datatype":"FP32","shape":`...)
	b = appendInts(b, int64(a.rows), int64(a.dim))
	if a.binary {
		b = append(b, `,"parameters":{"binary_data_size":`...)
		b = strconv.AppendInt(b, int64(4*len(a.embeddings)), 10)
		b = append(b, "}}]}"...)
		return b
	}
	b = append(b, `,"data":`...)
	b = appendRows(b, a.embeddings, a.text, a.rows, a.dim)
	return append(b, "}]}"...)
}

// appendRows appends rows×dim embeddings as one flat JSON array, as
// appendFloat32s does, copying the rows whose text the engine wrote.
func appendRows(b []byte, emb []float32, text [][]byte, rows, dim int) []byte {
	if text == nil {
		return appendFloat32s(b, emb)
	}
	b = append(b, '[')
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRowText(b, emb[i*dim:(i+1)*dim], text[i])
	}
	return append(b, ']')
}

// appendRowText appends one row's numbers without brackets: the engine's
// text when there is one, else formatted here.
func appendRowText(b []byte, row []float32, text []byte) []byte {
	if text != nil {
		return append(b, text...)
	}
	return floatfmt.AppendFloat32s(b, row, ',', "null")
}

// writeKServe writes the answer as JSON, or as JSON header plus binary FP32
// data with Inference-Header-Content-Length when binary output was asked for.
//
// The whole answer goes out in one Write with its Content-Length, and the
// header values are assigned, not Set: Set allocates a slice per value,
// and net/http only reads them (the canonical keys are written as such).
func writeKServe(w http.ResponseWriter, r *http.Request, a *inferAnswer) {
	buf := getBuffer()
	b := appendKServeJSON((*buf)[:0], a)
	h := w.Header()
	if a.binary {
		h[headerContentLength] = []string{strconv.Itoa(len(b))}
		h["Content-Type"] = contentTypeOctetStream
		b = appendFloat32LE(b, a.embeddings)
	} else {
		h["Content-Type"] = contentTypeJSON
	}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	a.done()
	writeBody(w, r, b)
	*buf = b
	putBuffer(buf)
}

// done releases the engine memory a's text points into; a's text must not
// be read after.
func (a *inferAnswer) done() {
	if a.release != nil {
		a.release()
		a.release, a.text = nil, nil
	}
}

// Shared header values (never modified: net/http copies the header map
// before it writes it, and nothing appends to these).
var (
	contentTypeJSON        = []string{"application/json"}
	contentTypeOctetStream = []string{"application/octet-stream"}
)
