package serve

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The fast KServe decoder's tokens: literals, strings and numbers, read
// with encoding/json's grammar and decoding rules.

func (d *fastDecoder) literal(lit string) bool {
	if !bytes.HasPrefix(d.b[d.i:], []byte(lit)) {
		return false
	}
	d.i += len(lit)
	return d.i == len(d.b) || endsScalar(d.b[d.i])
}

// skipString moves past the string at d.i and returns the end of its
// contents (the closing quote's index) and whether it holds escapes.
func (d *fastDecoder) skipString() (int, bool, bool) {
	i := d.i + 1
	escaped := false
	for i < len(d.b) {
		switch c := d.b[i]; {
		case c == '"':
			d.i = i + 1
			return i, escaped, true
		case c == '\\':
			escaped = true
			i += 2
		case c < 0x20:
			return 0, false, false
		default:
			i++
		}
	}
	return 0, false, false
}

// text decodes one text of a request's list (str), counted against the
// limits on elements and string bytes; false when over them, so that the
// general path answers with its message.
func (d *fastDecoder) text() (string, bool) {
	start := d.i
	s, ok := d.str()
	if !ok {
		return "", false
	}
	d.elements++
	d.strBytes += int64(d.i - start - 2)
	return s, d.elements <= d.lim.elements && d.strBytes <= d.lim.stringBytes
}

// str decodes the string at d.i as encoding/json does (escapes, an
// invalid \u surrogate becomes U+FFFD).
func (d *fastDecoder) str() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	end, escaped, ok := d.skipString()
	if !ok {
		return "", false
	}
	if !escaped {
		return string(d.b[start:end]), true
	}
	return unescape(d.b[start:end])
}

// name decodes a tensor name or datatype: the usual ones without
// allocating (the switch on string(b) converts nothing).
func (d *fastDecoder) name() (string, bool) {
	if d.i < len(d.b) && d.b[d.i] == '"' {
		start := d.i + 1
		if end := bytes.IndexByte(d.b[start:], '"'); end >= 0 {
			switch raw := d.b[start : start+end]; string(raw) {
			case "text":
				d.i = start + end + 1
				return "text", true
			case "BYTES":
				d.i = start + end + 1
				return "BYTES", true
			case "embeddings":
				d.i = start + end + 1
				return "embeddings", true
			}
		}
	}
	return d.str()
}

// unescape decodes a JSON string's contents holding backslash escapes,
// as encoding/json's unquote does.
func unescape(s []byte) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		switch s[i+1] {
		case '"', '\\', '/':
			out = append(out, s[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4pair(s[i:]); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", false
		}
		i += 2
	}
	return string(out), true
}

// hex4pair reads a following \uXXXX escape.
func hex4pair(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	return hex4(s[2:])
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number moves past a number in JSON's grammar and returns its text.
func (d *fastDecoder) number() ([]byte, bool) {
	b, i := d.b, d.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && !endsScalar(b[i]) {
		return nil, false
	}
	d.i = i
	return b[start:i], true
}

// int64 reads an integer as encoding/json fills an int64 (no fraction or
// exponent; in range).
func (d *fastDecoder) int64() (int64, bool) {
	t, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(t), 10, 64)
	return v, err == nil
}

// float reads a number as encoding/json fills an any (float64).
func (d *fastDecoder) float() (float64, bool) {
	t, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(t), 64)
	return v, err == nil
}
