package serve

import (
	"bytes"
)

// scanJSON walks a request body once, before anything is decoded, and
// refuses what would make decoding expensive or ambiguous: nesting deeper
// than lim.depth, objects with more than lim.keys keys or a key twice (a
// strict decoder refuses duplicates instead of letting the last win), and
// more tensors, elements or string bytes than lim allows. It allocates only
// its stack. The counted paths are the KServe request's (inputs, outputs,
// inputs[*].data) or OpenAI's (input), chosen by schema.
//
// It checks structure, not all of JSON's grammar: json.Unmarshal, which
// runs only after this scan, validates the whole body before it decodes.
// What the scan counts is exact for every body Unmarshal accepts.

type jsonSchema int

const (
	schemaKServe jsonSchema = iota
	schemaOpenAI
	schemaOther // small bodies: depth, keys and duplicates only
)

// jsonLimits are the bounds scanJSON enforces.
type jsonLimits struct {
	depth, keys        int
	inputs, outputs    int
	elements           int   // data elements (KServe) or input texts (OpenAI), all tensors together
	stringBytes        int64 // raw bytes of those elements' strings
	elementsWhat, unit string
	elementsKind       errorKind // what too many elements is: 400 (KServe, as Triton) or 413
}

// scan roles: what the array or object at a stack level is.
type jsonRole uint8

const (
	roleOther jsonRole = iota
	roleRoot
	roleInputs  // the KServe "inputs" array
	roleOutputs // the KServe "outputs" array
	roleInput   // one input object
	roleData    // a data array (nested arrays included) or OpenAI's input
)

type jsonFrame struct {
	array    bool
	role     jsonRole
	keyStart int // index into keys of this object's first key
	depth    int // data nesting below the input (roleData only)
}

type jsonCounts struct {
	inputs, outputs, elements int
	stringBytes               int64
	dataDepth                 []int // per input, the deepest data nesting
}

type jsonScanner struct {
	b      []byte
	i      int
	lim    jsonLimits
	schema jsonSchema
	stack  []jsonFrame
	keys   [][]byte
	c      jsonCounts
}

func scanJSON(b []byte, schema jsonSchema, lim jsonLimits) (*jsonCounts, error) {
	s := &jsonScanner{b: b, lim: lim, schema: schema, stack: make([]jsonFrame, 0, 16)}
	s.ws()
	if err := s.value(roleRoot, 0); err != nil {
		return nil, err
	}
	return &s.c, nil
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) syntax() error {
	return invalidf("malformed JSON at byte %d", s.i)
}

// value scans one value whose role its container decided.
func (s *jsonScanner) value(role jsonRole, dataDepth int) error {
	if s.i >= len(s.b) {
		return s.syntax()
	}
	switch c := s.b[s.i]; {
	case c == '{':
		if role == roleData {
			// Not a tensor element, but decoding holds it as one until
			// it is refused: it counts.
			if err := s.element(0); err != nil {
				return err
			}
			role = roleOther
		}
		return s.object(role)
	case c == '[':
		return s.array(role, dataDepth)
	case c == '"':
		start := s.i
		if err := s.str(); err != nil {
			return err
		}
		if role == roleData {
			return s.element(int64(s.i - start - 2))
		}
		return nil
	default:
		for s.i < len(s.b) && !endsScalar(s.b[s.i]) {
			s.i++
		}
		if role == roleData {
			return s.element(0)
		}
		return nil
	}
}

func (s *jsonScanner) element(strBytes int64) error {
	s.c.elements++
	s.c.stringBytes += strBytes
	if s.c.elements > s.lim.elements {
		return errorf(s.lim.elementsKind, "the request has more than %d %s (%s)", s.lim.elements, s.lim.elementsWhat, s.lim.unit)
	}
	if s.c.stringBytes > s.lim.stringBytes {
		return errorf(kindTooLarge, "the request's strings hold more than %d bytes (--max-request-bytes)", s.lim.stringBytes)
	}
	return nil
}

func (s *jsonScanner) push(f jsonFrame) error {
	if len(s.stack) >= s.lim.depth {
		return invalidf("JSON nested deeper than %d levels", s.lim.depth)
	}
	s.stack = append(s.stack, f)
	return nil
}

func (s *jsonScanner) str() error {
	s.i++ // opening quote
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return nil
		default:
			s.i++
		}
	}
	return s.syntax()
}

func (s *jsonScanner) object(role jsonRole) error {
	if err := s.push(jsonFrame{role: role, keyStart: len(s.keys)}); err != nil {
		return err
	}
	defer func() {
		f := s.stack[len(s.stack)-1]
		s.keys = s.keys[:f.keyStart]
		s.stack = s.stack[:len(s.stack)-1]
	}()
	f := s.stack[len(s.stack)-1]
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	if role == roleInput {
		s.c.dataDepth = append(s.c.dataDepth, 0)
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntax()
		}
		start := s.i
		if err := s.str(); err != nil {
			return err
		}
		key := s.b[start+1 : s.i-1]
		if len(s.keys)-f.keyStart >= s.lim.keys {
			return invalidf("a JSON object has more than %d keys", s.lim.keys)
		}
		for _, k := range s.keys[f.keyStart:] {
			if bytes.Equal(k, key) {
				return invalidf("duplicate key %q in a JSON object", key)
			}
		}
		s.keys = append(s.keys, key)
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.syntax()
		}
		s.i++
		s.ws()
		// encoding/json matches struct fields case-insensitively, so
		// "INPUTS" fills Inputs too: the counted keys are matched alike.
		child := roleOther
		is := func(name string) bool { return bytes.EqualFold(key, []byte(name)) }
		switch {
		case role == roleRoot && s.schema == schemaKServe && is("inputs"):
			child = roleInputs
		case role == roleRoot && s.schema == schemaKServe && is("outputs"):
			child = roleOutputs
		case role == roleRoot && s.schema == schemaOpenAI && is("input"):
			child = roleData
		case role == roleInput && is("data"):
			child = roleData
		}
		if err := s.value(child, 0); err != nil {
			return err
		}
		if more, err := s.more('}'); !more {
			return err
		}
	}
}

func (s *jsonScanner) array(role jsonRole, dataDepth int) error {
	if role == roleData {
		dataDepth++
		if n := len(s.c.dataDepth); n > 0 && dataDepth > s.c.dataDepth[n-1] {
			s.c.dataDepth[n-1] = dataDepth
		}
	}
	if err := s.push(jsonFrame{array: true, role: role}); err != nil {
		return err
	}
	defer func() { s.stack = s.stack[:len(s.stack)-1] }()
	child := roleOther
	switch role {
	case roleInputs:
		child = roleInput
	case roleData:
		child = roleData
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		switch role {
		case roleInputs:
			if s.c.inputs++; s.c.inputs > s.lim.inputs {
				return invalidf("the request has more than %d inputs", s.lim.inputs)
			}
		case roleOutputs:
			if s.c.outputs++; s.c.outputs > s.lim.outputs {
				return invalidf("the request asks for more than %d outputs", s.lim.outputs)
			}
		}
		if err := s.value(child, dataDepth); err != nil {
			return err
		}
		if more, err := s.more(']'); !more {
			return err
		}
	}
}

// more consumes what follows a member or an element: true after a comma,
// false (and no error) after the closing byte.
func (s *jsonScanner) more(closing byte) (bool, error) {
	s.ws()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			return true, nil
		case closing:
			s.i++
			return false, nil
		}
	}
	return false, s.syntax()
}

// endsScalar reports whether c ends a number or literal.
func endsScalar(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}
