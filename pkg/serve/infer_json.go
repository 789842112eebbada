package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// The KServe v2 HTTP inference request, with Triton's binary tensor data
// extension: when the Inference-Header-Content-Length header is present,
// the body is that many bytes of JSON followed by the binary tensors of the
// inputs that carry a `binary_data_size` parameter, in input order.

// headerContentLength is Triton's binary extension header.
const headerContentLength = "Inference-Header-Content-Length"

type jsonInferRequest struct {
	ID         *json.RawMessage           `json:"id"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Inputs     []jsonInferInput           `json:"inputs"`
	Outputs    []jsonRequestedOutput      `json:"outputs"`
}

type jsonInferInput struct {
	Name       string                     `json:"name"`
	Shape      []int64                    `json:"shape"`
	Datatype   string                     `json:"datatype"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Data       json.RawMessage            `json:"data"`
}

// jsonRequestedOutput ignores fields it does not need; the article's client
// sends a `shape` there, which KServe does not define and Triton ignores.
type jsonRequestedOutput struct {
	Name       string                     `json:"name"`
	Parameters map[string]json.RawMessage `json:"parameters"`
}

// decodeHTTPInfer decodes a KServe v2 HTTP infer body. headerLen is the
// value of the Inference-Header-Content-Length header ("" when absent).
func decodeHTTPInfer(body []byte, headerLen string) (*inferCall, error) {
	jsonPart, binPart := body, []byte(nil)
	if headerLen != "" {
		n, err := strconv.Atoi(headerLen)
		if err != nil || n < 0 || n > len(body) {
			return nil, invalidf("%s is %q; expected a length between 0 and the body's %d bytes", headerContentLength, headerLen, len(body))
		}
		jsonPart, binPart = body[:n], body[n:]
	}
	if !utf8.Valid(jsonPart) {
		return nil, invalidf("request JSON is not valid UTF-8")
	}
	var req jsonInferRequest
	if err := strictUnmarshal(jsonPart, &req); err != nil {
		return nil, err
	}
	call := &inferCall{inputs: make([]callInput, 0, len(req.Inputs))}
	if req.ID != nil {
		if err := json.Unmarshal(*req.ID, &call.id); err != nil {
			return nil, invalidf("request id must be a string")
		}
	}
	for name, raw := range req.Parameters {
		p, err := jsonParameter(name, raw)
		if err != nil {
			return nil, err
		}
		if err := applyRequestParameter(call, name, p); err != nil {
			return nil, err
		}
	}
	for i := range req.Inputs {
		in, err := decodeJSONInput(&req.Inputs[i], &binPart, headerLen != "")
		if err != nil {
			return nil, err
		}
		call.inputs = append(call.inputs, in)
	}
	if len(binPart) > 0 {
		return nil, invalidf("%d bytes of binary data follow the JSON header but no input claims them (binary_data_size)", len(binPart))
	}
	for _, o := range req.Outputs {
		out := callOutput{name: o.Name}
		for name, raw := range o.Parameters {
			p, err := jsonParameter(name, raw)
			if err != nil {
				return nil, err
			}
			if err := applyOutputParameter(&out, name, p); err != nil {
				return nil, err
			}
		}
		call.outputs = append(call.outputs, out)
	}
	return call, nil
}

func decodeJSONInput(j *jsonInferInput, bin *[]byte, hasBinary bool) (callInput, error) {
	in := callInput{name: j.Name, datatype: j.Datatype, shape: j.Shape}
	if j.Name == "" {
		return in, invalidf("an input has no name")
	}
	if j.Shape == nil {
		return in, invalidf("input %q has no shape", j.Name)
	}
	binSize := int64(-1)
	for name, raw := range j.Parameters {
		if name != "binary_data_size" {
			continue
		}
		p, err := jsonParameter(name, raw)
		if err != nil {
			return in, err
		}
		if binSize, err = p.asCount(); err != nil {
			return in, err
		}
	}
	hasData := len(j.Data) > 0 && !bytes.Equal(j.Data, []byte("null"))
	switch {
	case binSize >= 0 && !hasBinary:
		return in, invalidf("input %q has binary_data_size but the request has no %s header", j.Name, headerContentLength)
	case binSize >= 0 && hasData:
		return in, invalidf("input %q has both JSON data and binary_data_size", j.Name)
	case binSize >= 0:
		if binSize > int64(len(*bin)) {
			return in, invalidf("input %q: binary_data_size %d but only %d bytes of binary data remain", j.Name, binSize, len(*bin))
		}
		data := (*bin)[:binSize]
		*bin = (*bin)[binSize:]
		if j.Datatype != "BYTES" {
			return in, nil // validate rejects the datatype by name
		}
		texts, err := splitBytesElements(j.Name, data, nil)
		in.texts = texts
		return in, err
	case !hasData:
		return in, invalidf("input %q has no data", j.Name)
	}
	if j.Datatype != "BYTES" {
		return in, nil
	}
	texts, err := jsonStrings(j.Name, j.Data)
	in.texts = texts
	return in, err
}

// jsonStrings flattens a BYTES tensor's JSON data, flat (["a","b"]) or
// nested ([["a"],["b"]]) as KServe allows, into its elements in row-major
// order.
func jsonStrings(name string, raw json.RawMessage) ([]string, error) {
	var flat []string
	if json.Unmarshal(raw, &flat) == nil { // the common case, in one pass
		return flat, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var out []string
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalidf("input %q data: %v", name, err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '[':
				depth++
			case ']':
				depth--
			default:
				return nil, invalidf("input %q data: objects are not tensor elements", name)
			}
		case string:
			if depth == 0 {
				return nil, invalidf("input %q data must be an array of strings", name)
			}
			out = append(out, v)
		default:
			return nil, invalidf("input %q element %d is %s; BYTES data must be strings", name, len(out), jsonKind(v))
		}
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	}
	return "not a string"
}

// jsonParameter reads one KServe parameter value (bool, number or string).
func jsonParameter(name string, raw json.RawMessage) (parameter, error) {
	p := parameter{source: name}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return p, invalidf("parameter %q: %v", name, err)
	}
	switch x := v.(type) {
	case bool:
		p.boolV = &x
	case float64:
		p.numV = &x
	case string:
		p.strV = &x
	default:
		return p, invalidf("parameter %q must be a boolean, number or string", name)
	}
	return p, nil
}

// strictUnmarshal decodes one JSON value and rejects trailing data, with a
// message that says where the JSON went wrong.
func strictUnmarshal(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return invalidf("request body is empty; expected a JSON object")
	}
	// json.Unmarshal checks the whole body first (trailing data included)
	// and decodes without the copy a json.Decoder makes.
	if err := json.Unmarshal(data, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return invalidf("malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return invalidf("malformed request: field %q must be %s, not %s", te.Field, te.Type, te.Value)
		}
		return invalidf("malformed JSON: %v", err)
	}
	return nil
}
