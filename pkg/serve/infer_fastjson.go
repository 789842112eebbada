package serve

import (
	"bytes"
	"unicode/utf8"
)

// fastDecodeKServe decodes the common KServe v2 JSON infer request, the
// article's and tritonclient's shape, in one pass over the body without
// reflection:
//
//	{"id": "...", "parameters": {...},
//	 "inputs": [{"name": "text", "shape": [N, 1], "datatype": "BYTES", "data": ["...", ...]}],
//	 "outputs": [{"name": "embeddings", "parameters": {"binary_data": false}, "shape": [...]}]}
//
// It applies the checks scanJSON and decodeHTTPInfer would (limits,
// duplicate keys, JSON's grammar, the parameters' types) and returns ok
// only for a body that both of them accept and that decodes to the same
// call. Anything else, valid or not (other key spellings, nested data,
// input parameters, a limit reached, any error), returns ok false and the
// caller takes the general path, which then gives the answer, error
// message included: so this decoder changes no behaviour, only cost
// (FuzzFastKServeDecode compares the two on arbitrary bodies).
func fastDecodeKServe(body []byte, lim fastLimits) (*inferCall, bool) {
	if lim.depth < fastMaxDepth || !utf8.Valid(body) {
		return nil, false
	}
	spare := &fastCall{}
	d := fastDecoder{b: body, lim: lim, spare: spare}
	call := &spare.call
	d.ws()
	if !d.root(call) {
		return nil, false
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, false
	}
	if call.inputs == nil {
		call.inputs = make([]callInput, 0)
	}
	return call, true
}

// fastLimits are the bounds of jsonLimits the fast path checks; past any
// of them it gives up and the general path reports the error.
type fastLimits struct {
	depth, keys, inputs, outputs, elements int
	stringBytes                            int64
}

// fastMaxDepth is the deepest nesting the fast path accepts (an output's
// skipped shape array inside an output inside outputs inside the root).
const fastMaxDepth = 4

// fastMaxKeys bounds the keys of one object on the fast path.
const fastMaxKeys = 8

type fastDecoder struct {
	b        []byte
	i        int
	lim      fastLimits
	elements int
	strBytes int64
	spare    *fastCall // the usual call's parts, in one allocation
}

// fastCall holds a call and the parts of the usual one (one input with a
// two-dimensional shape and one text, one output), so that decoding it
// allocates one object instead of five; other calls grow past it.
type fastCall struct {
	call      inferCall
	inputs    [1]callInput
	outputs   [1]callOutput
	shape     [2]int64
	texts     [1]string
	shapeUsed bool
	textsUsed bool
}

// shapes is an empty shape list: the spare one the first time.
func (f *fastCall) shapes() []int64 {
	if f.shapeUsed {
		return make([]int64, 0, 2)
	}
	f.shapeUsed = true
	return f.shape[:0:2]
}

// textList is an empty text list: the spare one the first time.
func (f *fastCall) textList() []string {
	if f.textsUsed {
		return make([]string, 0, 1)
	}
	f.textsUsed = true
	return f.texts[:0:1]
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (d *fastDecoder) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *fastDecoder) eat(c byte) bool {
	if d.peek() != c {
		return false
	}
	d.i++
	return true
}

// object walks an object's members, calling member with each raw key
// (escape-free ASCII or UTF-8, checked unique) positioned at its value.
// depth is the object's own nesting level.
func (d *fastDecoder) object(depth int, member func(key []byte) bool) bool {
	if depth > d.lim.depth || !d.eat('{') {
		return false
	}
	if d.eat('}') {
		return true
	}
	var seen [fastMaxKeys][]byte
	n := 0
	for {
		if d.peek() != '"' {
			return false
		}
		start := d.i + 1
		end, escaped, ok := d.skipString()
		if !ok || escaped {
			return false
		}
		key := d.b[start:end]
		if n == fastMaxKeys || n >= d.lim.keys {
			return false
		}
		for _, k := range seen[:n] {
			if bytes.Equal(k, key) {
				return false
			}
		}
		seen[n] = key
		n++
		if !d.eat(':') {
			return false
		}
		d.ws()
		if !member(key) {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// array walks an array's elements, calling elem positioned at each.
func (d *fastDecoder) array(depth int, elem func() bool) bool {
	if depth > d.lim.depth || !d.eat('[') {
		return false
	}
	if d.eat(']') {
		return true
	}
	for {
		d.ws()
		if !elem() {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return true
		default:
			return false
		}
	}
}

func (d *fastDecoder) root(call *inferCall) bool {
	return d.object(1, func(key []byte) bool {
		switch string(key) {
		case "id":
			if d.literal("null") {
				return true
			}
			s, ok := d.str()
			call.id = s
			return ok
		case "parameters":
			return d.parameters(2, func(name string, p parameter) bool {
				return applyRequestParameter(call, name, p) == nil
			})
		case "inputs":
			call.inputs = d.spare.inputs[:0:1]
			return d.array(2, func() bool {
				if len(call.inputs) == d.lim.inputs {
					return false
				}
				in, ok := d.input()
				call.inputs = append(call.inputs, in)
				return ok
			})
		case "outputs":
			return d.array(2, func() bool {
				if len(call.outputs) == d.lim.outputs {
					return false
				}
				if call.outputs == nil { // "outputs": [] stays nil, as in the general path
					call.outputs = d.spare.outputs[:0:1]
				}
				out, ok := d.output()
				call.outputs = append(call.outputs, out)
				return ok
			})
		}
		return false // another key, or another spelling of one: the general path
	})
}

func (d *fastDecoder) input() (callInput, bool) {
	var in callInput
	var hasName, hasShape, hasData bool
	ok := d.object(3, func(key []byte) bool {
		switch string(key) {
		case "name":
			var ok bool
			in.name, ok = d.name()
			hasName = true
			return ok
		case "datatype":
			var ok bool
			in.datatype, ok = d.name()
			return ok
		case "shape":
			in.shape = d.spare.shapes()
			hasShape = true
			return d.array(4, func() bool {
				v, ok := d.int64()
				in.shape = append(in.shape, v)
				return ok
			})
		case "data":
			in.texts = d.spare.textList()
			hasData = true
			return d.array(4, func() bool {
				s, ok := d.text()
				if ok {
					in.texts = append(in.texts, s)
				}
				return ok
			})
		}
		return false
	})
	// What the general path refuses, or decodes only for another datatype.
	return in, ok && hasName && in.name != "" && hasShape && hasData && in.datatype == "BYTES"
}

func (d *fastDecoder) output() (callOutput, bool) {
	var out callOutput
	ok := d.object(3, func(key []byte) bool {
		switch string(key) {
		case "name":
			var ok bool
			out.name, ok = d.name()
			return ok
		case "parameters":
			// Any error gives up, so the name (for messages) and the
			// order (free of consequence without errors) do not matter.
			return d.parameters(4, func(name string, p parameter) bool {
				return applyOutputParameter(&out, name, p) == nil
			})
		}
		// Ignored as encoding/json ignores it, unless encoding/json would
		// take it for a field under another spelling.
		if !ignorableKey(key, "name", "parameters") {
			return false
		}
		return d.skipScalarArray(4)
	})
	return out, ok
}

// ignorableKey reports whether an unknown key can be skipped: plain ASCII
// that no field name matches case-insensitively (encoding/json's match,
// which also folds 'ſ' and 'K' into 's' and 'k': non-ASCII keys are left
// to the general path).
func ignorableKey(key []byte, fields ...string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, f := range fields {
		if bytes.EqualFold(key, []byte(f)) {
			return false
		}
	}
	return true
}

// parameters decodes a parameters object of scalar values.
func (d *fastDecoder) parameters(depth int, apply func(name string, p parameter) bool) bool {
	return d.object(depth, func(key []byte) bool {
		name := string(key)
		p := parameter{source: name}
		switch c := d.peek(); {
		case c == '"':
			s, ok := d.str()
			if !ok {
				return false
			}
			p.strV = &s
		case c == 't' || c == 'f':
			v := c == 't'
			if !d.literal("true") && !d.literal("false") {
				return false
			}
			p.boolV = &v
		default:
			v, ok := d.float()
			if !ok {
				return false
			}
			p.numV = &v
		}
		return apply(name, p)
	})
}

// skipScalarArray skips a scalar or an array of scalars (an output's
// shape), checking their grammar.
func (d *fastDecoder) skipScalarArray(depth int) bool {
	if d.peek() != '[' {
		return d.skipScalar()
	}
	return d.array(depth, d.skipScalar)
}

func (d *fastDecoder) skipScalar() bool {
	switch c := d.peek(); c {
	case '"':
		_, ok := d.str() // decoded, so that its escapes are checked
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	_, ok := d.number()
	return ok
}
