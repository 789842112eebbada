package engine

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func scanAll(in string, jsonl bool) ([]string, error) {
	s := NewTextScanner(strings.NewReader(in), "in", jsonl)
	var out []string
	for s.Scan() {
		out = append(out, s.Text())
	}
	return out, s.Err()
}

func TestTextScanner(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		jsonl   bool
		want    []string
		wantErr string
	}{
		{"plain lines keep blank ones", "酒店很好\n\nHello\r\n", false, []string{"酒店很好", "", "Hello"}, ""},
		{"plain without final newline", "a\nb", false, []string{"a", "b"}, ""},
		{"jsonl with control characters and blank lines", `{"text":"a\nb\u0000c"}` + "\n\n" + `{"text":"","id":7}` + "\n", true,
			[]string{"a\nb\x00c", ""}, ""},
		{"plain invalid UTF-8 names the line", "ok\na\xffb\n", false, nil, "in:2: invalid UTF-8"},
		{"jsonl invalid UTF-8", "{\"text\":\"a\xffb\"}\n", true, nil, "in:1: invalid UTF-8"},
		{"jsonl text not a string", `{"text": 3}`, true, nil, `"text" is not a string`},
		{"jsonl no text field", `{"txt": "x"}`, true, nil, `no "text" field`},
		{"jsonl array", `["x"]`, true, nil, "expected a JSON object"},
		{"jsonl two objects on a line", `{"text":"a"} {"text":"b"}`, true, nil, "one JSON object"},
		{"jsonl broken", `{"text":`, true, nil, "in:1: expected a JSON object"},
		{"jsonl CRLF", "{\"text\":\"a\"}\r\n{\"text\":\"b\"}\r\n", true, []string{"a", "b"}, ""},
		{"jsonl escaped surrogate pair", `{"text":"\ud83d\ude02"}`, true, []string{"😂"}, ""},
		{"jsonl escaped backslash before u", `{"text":"\\ud800"}`, true, []string{`\ud800`}, ""},
		{"jsonl lone high surrogate", `{"text":"\ud800x"}`, true, nil, "in:1: invalid UTF-8"},
		{"jsonl lone low surrogate", `{"text":"\udc00"}`, true, nil, "in:1: invalid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scanAll(tc.in, tc.jsonl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTextScannerLineTooLong(t *testing.T) {
	_, err := scanAll(strings.Repeat("x", MaxInputLine+1), false)
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParseTextLine: accepted lines yield valid UTF-8 text; invalid UTF-8 is
// always refused; never a panic.
func FuzzParseTextLine(f *testing.F) {
	for _, s := range []string{`{"text":"酒店很好"}`, `{"text":"\\\\u"}`, `{"text":"\u"}`, `{"text":"a\u0000"}`, `{"text":null}`, `[]`, `{"text":"\ud800"}`, "{\"text\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		text, err := ParseTextLine(line)
		if !utf8.Valid(line) && !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("invalid UTF-8 accepted: err=%v", err)
		}
		if err == nil && !utf8.ValidString(text) {
			t.Fatalf("text %q is not valid UTF-8", text)
		}
		// U+FFFD may only come out if the line spelt it.
		if err == nil && strings.ContainsRune(text, 0xfffd) && !strings.ContainsRune(string(line), 0xfffd) && !strings.Contains(strings.ToLower(string(line)), `\ufffd`) {
			t.Fatalf("U+FFFD appeared from %q", line)
		}
	})
}
