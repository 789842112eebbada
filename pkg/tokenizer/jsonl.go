package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// ErrInvalidUTF8 marks input text that is not valid UTF-8 (including JSON
// \u escapes of unpaired surrogates), which m3ectl rejects rather than
// silently tokenising U+FFFD.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// Encoding is one tokenised text as m3ectl tokenize prints it.
type Encoding struct {
	IDs    []int32  `json:"ids"`
	Tokens []string `json:"tokens"`
}

// ScanJSONL reads JSON Lines of the form {"text": "..."} from r and calls fn
// with each text and its 1-based line number, in order. Blank lines are
// skipped. A line that is not such an object, or whose text is not valid
// UTF-8, stops the scan with an error naming the line; so does an error from
// fn.
func ScanJSONL(r io.Reader, fn func(line int, text string) error) error {
	br := bufio.NewReaderSize(r, 64*1024)
	for n := 1; ; n++ {
		raw, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(raw)) > 0 {
			text, perr := parseJSONLText(raw)
			if perr != nil {
				return fmt.Errorf("line %d: %w", n, perr)
			}
			if ferr := fn(n, text); ferr != nil {
				return fmt.Errorf("line %d: %w", n, ferr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
}

// parseJSONLText extracts the "text" string of one JSON Lines record.
func parseJSONLText(raw []byte) (string, error) {
	// encoding/json would turn bad bytes and lone surrogates into U+FFFD
	// without a word, so check both before decoding.
	if !utf8.Valid(raw) || loneSurrogate(raw) {
		return "", fmt.Errorf("text: %w", ErrInvalidUTF8)
	}
	var rec struct {
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return "", fmt.Errorf(`want a JSON object {"text": "..."}: %w`, err)
	}
	if rec.Text == nil {
		return "", errors.New(`want a JSON object with a "text" string`)
	}
	return *rec.Text, nil
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

// Encoding tokenises text and pairs the ids with their tokens, the record
// m3ectl tokenize prints.
func (t *Tokenizer) Encoding(text string) Encoding {
	ids := t.Encode(text)
	return Encoding{IDs: ids, Tokens: t.Tokens(ids)}
}
