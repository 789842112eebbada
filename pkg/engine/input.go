package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxInputLine bounds one input line (plain or JSON), so a stream without
// newlines cannot grow memory without limit.
const MaxInputLine = 16 << 20

// ErrInvalidUTF8 marks input text that is not valid UTF-8. The tokenizer
// would replace bad bytes with U+FFFD; the CLI refuses them instead, so the
// embedding a user gets is of the text they meant.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// TextScanner reads input texts one at a time from a stream: one text per
// line, or JSON lines of objects {"text": "..."} so that any text (newlines,
// control characters) can be given. It validates UTF-8 and reports errors
// with the source name and line number.
type TextScanner struct {
	sc    *bufio.Scanner
	name  string
	jsonl bool
	line  int
	text  string
	err   error
}

// NewTextScanner reads r; name (a file name or "stdin") labels errors.
// In JSON-lines mode blank lines are skipped; in plain mode every line,
// blank ones included, is a text.
func NewTextScanner(r io.Reader, name string, jsonl bool) *TextScanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxInputLine)
	return &TextScanner{sc: sc, name: name, jsonl: jsonl}
}

// Scan advances to the next text; it returns false at the end or on error.
func (s *TextScanner) Scan() bool {
	if s.err != nil {
		return false
	}
	for s.sc.Scan() {
		s.line++
		raw := s.sc.Bytes()
		if !s.jsonl {
			raw = bytes.TrimSuffix(raw, []byte{'\r'})
			if !utf8.Valid(raw) {
				s.err = fmt.Errorf("%s:%d: %w", s.name, s.line, ErrInvalidUTF8)
				return false
			}
			s.text = string(raw)
			return true
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		text, err := ParseTextLine(raw)
		if err != nil {
			s.err = fmt.Errorf("%s:%d: %w", s.name, s.line, err)
			return false
		}
		s.text = text
		return true
	}
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", MaxInputLine)
		}
		s.err = fmt.Errorf("%s:%d: %w", s.name, s.line+1, err)
	}
	return false
}

// Text is the current text.
func (s *TextScanner) Text() string { return s.text }

// Line is the current text's line number (1-based).
func (s *TextScanner) Line() int { return s.line }

// Err is the first error met, or nil at a clean end.
func (s *TextScanner) Err() error { return s.err }

// ParseTextLine decodes one JSON line {"text": "..."}. Other fields are
// ignored. Raw invalid UTF-8 and \u escapes of unpaired surrogates are errors
// (encoding/json would silently turn either into U+FFFD).
func ParseTextLine(line []byte) (string, error) {
	if !utf8.Valid(line) || loneSurrogate(line) {
		return "", ErrInvalidUTF8
	}
	var obj struct {
		Text *string `json:"text"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&obj); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return "", fmt.Errorf(`expected {"text": "..."}: %q is not a string`, typeErr.Field)
		}
		return "", fmt.Errorf(`expected a JSON object {"text": "..."}: %w`, err)
	}
	if dec.More() {
		return "", errors.New(`expected one JSON object {"text": "..."} per line`)
	}
	if obj.Text == nil {
		return "", errors.New(`expected a JSON object {"text": "..."}: no "text" field`)
	}
	return *obj.Text, nil
}

// loneSurrogate reports whether raw JSON contains a \u escape of a surrogate
// that is not part of a high-low pair.
func loneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		u, ok := hex4(raw[i+2:])
		if !ok {
			i++
			continue
		}
		switch {
		case u >= 0xdc00 && u <= 0xdfff:
			return true
		case u >= 0xd800 && u <= 0xdbff:
			next := raw[i+6:]
			if len(next) < 6 || next[0] != '\\' || next[1] != 'u' {
				return true
			}
			if lo, ok := hex4(next[2:]); !ok || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

// hex4 parses four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
