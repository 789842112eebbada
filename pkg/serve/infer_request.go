package serve

import (
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"
)

// Every inference route (KServe JSON, KServe binary, gRPC, OpenAI) decodes
// its wire form into an inferCall and then calls validate, so that a request
// is checked in exactly one place whatever protocol carried it.

// inferCall is one inference request in protocol-neutral form, as decoded
// and before it is checked against the model.
type inferCall struct {
	id           string
	inputs       []callInput
	outputs      []callOutput
	timeout      time.Duration // from the `timeout` parameter; 0: none
	binaryOutput bool          // request-level `binary_data_output`
}

// callInput is one input tensor of a request. Only BYTES tensors carry
// texts; other datatypes are kept long enough to be rejected by name.
type callInput struct {
	name     string
	datatype string
	shape    []int64
	texts    []string
}

// callOutput is one requested output tensor.
type callOutput struct {
	name   string
	binary *bool // `binary_data` parameter; nil: follow binary_data_output
}

// modelSpec is what validation needs to know about the model a request is for.
type modelSpec struct {
	name, version string
	input, output string
	maxBatchSize  int // 0: the model takes no batch dimension (one text)
	dim           int
}

// inferPlan is a validated request: the texts to embed and how to answer.
type inferPlan struct {
	id         string
	texts      []string
	wantOutput bool // false only when the client asked for no known output (never, today)
	binary     bool // embeddings go back as binary tensor data
	timeout    time.Duration
}

// validate checks call against the model and returns what to run. Errors
// name the tensor and the problem; all are InvalidInput.
func validate(call *inferCall, m modelSpec) (*inferPlan, error) {
	if len(call.inputs) == 0 {
		return nil, invalidf("request has no inputs; model %q expects input %q (BYTES, shape [N,1])", m.name, m.input)
	}
	if len(call.inputs) > 1 {
		for _, in := range call.inputs {
			if in.name != m.input {
				return nil, invalidf("unexpected input %q; model %q has one input %q", in.name, m.name, m.input)
			}
		}
		return nil, invalidf("input %q given %d times", m.input, len(call.inputs))
	}
	in := &call.inputs[0]
	if in.name != m.input {
		return nil, invalidf("unexpected input %q; model %q has one input %q", in.name, m.name, m.input)
	}
	if in.datatype != "BYTES" {
		return nil, invalidf("input %q has datatype %q; expected BYTES", in.name, in.datatype)
	}
	rows, err := textRows(in.name, in.shape, m.maxBatchSize)
	if err != nil {
		return nil, err
	}
	if len(in.texts) != rows {
		return nil, invalidf("input %q has %d elements but its shape %v holds %d", in.name, len(in.texts), in.shape, rows)
	}
	if m.maxBatchSize > 0 && rows > m.maxBatchSize {
		return nil, invalidf("input %q has %d rows, more than model %q's max_batch_size %d", in.name, rows, m.name, m.maxBatchSize)
	}
	for i, t := range in.texts {
		if !utf8.ValidString(t) {
			return nil, invalidf("input %q element %d is not valid UTF-8", in.name, i)
		}
	}
	plan := &inferPlan{id: call.id, texts: in.texts, wantOutput: true, binary: call.binaryOutput, timeout: call.timeout}
	for _, out := range call.outputs {
		if out.name != m.output {
			return nil, invalidf("unknown requested output %q; model %q has one output %q", out.name, m.name, m.output)
		}
		if out.binary != nil {
			plan.binary = *out.binary
		}
	}
	return plan, nil
}

// textRows reads the row count from a `text` tensor's shape: [N, 1] (the
// article's client and Triton's [-1]/[1] dims) or [N]. A model without a
// batch dimension takes [1] or [1, 1].
func textRows(name string, shape []int64, maxBatchSize int) (int, error) {
	if len(shape) == 0 || len(shape) > 2 {
		return 0, invalidf("input %q has shape %v; expected [N,1] or [N]", name, shape)
	}
	if slices.ContainsFunc(shape, func(d int64) bool { return d < 0 }) {
		return 0, invalidf("input %q has a negative dimension in shape %v", name, shape)
	}
	if len(shape) == 2 && shape[1] != 1 {
		return 0, invalidf("input %q has shape %v; each row holds one text, so the shape must be [N,1] or [N]", name, shape)
	}
	n := shape[0]
	if n == 0 {
		return 0, invalidf("input %q has no texts (shape %v)", name, shape)
	}
	if maxBatchSize == 0 && n != 1 {
		return 0, invalidf("input %q has %d rows but the model takes one text per request (max_batch_size 0)", name, n)
	}
	if n > math.MaxInt32 {
		return 0, invalidf("input %q has shape %v, too large", name, shape)
	}
	return int(n), nil
}

// parameter interprets the value of a request or tensor parameter, whatever
// protocol carried it (JSON gives bool/float64/string, gRPC a oneof).
type parameter struct {
	boolV  *bool
	numV   *float64
	strV   *string
	source string // the parameter's name, for messages
}

func (p parameter) asBool() (bool, error) {
	if p.boolV == nil {
		return false, invalidf("parameter %q must be a boolean", p.source)
	}
	return *p.boolV, nil
}

func (p parameter) asCount() (int64, error) {
	if p.numV == nil || *p.numV < 0 || *p.numV != math.Trunc(*p.numV) || *p.numV > math.MaxInt64/2 {
		return 0, invalidf("parameter %q must be a non-negative integer", p.source)
	}
	return int64(*p.numV), nil
}

// applyRequestParameter handles one request-level parameter. Parameters the
// server has no use for (priority, sequence ids, custom ones) are accepted
// and ignored, as Triton ignores parameters a backend does not read.
func applyRequestParameter(call *inferCall, name string, p parameter) error {
	switch name {
	case "timeout":
		us, err := p.asCount()
		if err != nil {
			return err
		}
		// A timeout too long to be a time.Duration (292 years) means none;
		// multiplying it would overflow into a timeout of microseconds.
		if us <= int64(math.MaxInt64/time.Microsecond) {
			call.timeout = time.Duration(us) * time.Microsecond
		}
	case "binary_data_output":
		b, err := p.asBool()
		if err != nil {
			return err
		}
		call.binaryOutput = b
	}
	return nil
}

// applyOutputParameter handles one parameter of a requested output.
func applyOutputParameter(out *callOutput, name string, p parameter) error {
	switch name {
	case "binary_data":
		b, err := p.asBool()
		if err != nil {
			return err
		}
		out.binary = &b
	case "classification":
		return errorf(kindUnsupported, "output %q: the classification extension is not supported for embeddings", out.name)
	}
	return nil
}

// splitBytesElements parses Triton's serialised BYTES tensor: each element
// is a 4-byte little-endian length followed by that many bytes.
func splitBytesElements(name string, data []byte, dst []string) ([]string, error) {
	if countBytesElements(data, maxBytesElements) > maxBytesElements {
		return nil, errorf(kindTooLarge, "input %q has more than %d elements", name, maxBytesElements)
	}
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return nil, invalidf("input %q: binary data ends inside an element's 4-byte length prefix", name)
		}
		n := int(uint32(data[off]) | uint32(data[off+1])<<8 | uint32(data[off+2])<<16 | uint32(data[off+3])<<24)
		off += 4
		if n > len(data)-off {
			return nil, invalidf("input %q: element %d claims %d bytes but only %d remain", name, len(dst), n, len(data)-off)
		}
		dst = append(dst, string(data[off:off+n]))
		off += n
	}
	return dst, nil
}

func (c callInput) String() string { return fmt.Sprintf("%s %s %v", c.name, c.datatype, c.shape) }
