package tokenizer

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestScanJSONL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
		utf8    bool
	}{
		{"texts in order, blank lines skipped", "{\"text\":\"你好\"}\n\n  \n{\"text\": \"b\", \"id\": 3}\n", []string{"你好", "b"}, "", false},
		{"last line without newline", `{"text":"a"}`, []string{"a"}, "", false},
		{"CRLF", "{\"text\":\"a\"}\r\n{\"text\":\"b\"}\r\n", []string{"a", "b"}, "", false},
		{"escaped surrogate pair is fine", `{"text":"\ud83d\ude02"}`, []string{"😂"}, "", false},
		{"escaped backslash before u", `{"text":"\\ud800"}`, []string{`\ud800`}, "", false},
		{"empty text is a text", `{"text":""}`, []string{""}, "", false},
		{"invalid UTF-8 bytes", "{\"text\":\"a\"}\n{\"text\":\"\xff\"}\n", []string{"a"}, "line 2: text: invalid UTF-8", true},
		{"lone high surrogate", `{"text":"\ud800x"}`, nil, "line 1: text: invalid UTF-8", true},
		{"lone low surrogate", `{"text":"\udc00"}`, nil, "line 1: text: invalid UTF-8", true},
		{"not an object", `["a"]`, nil, "line 1: want a JSON object", false},
		{"no text field", `{"input":"a"}`, nil, `line 1: want a JSON object with a "text" string`, false},
		{"text not a string", `{"text":3}`, nil, "line 1: want a JSON object", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := ScanJSONL(strings.NewReader(tc.in), func(_ int, s string) error {
				got = append(got, s)
				return nil
			})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrInvalidUTF8) != tc.utf8 {
				t.Errorf("errors.Is(err, ErrInvalidUTF8) = %v", !tc.utf8)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("texts = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzScanJSONL: the JSON Lines reader never panics and never hands on text
// that is not valid UTF-8.
func FuzzScanJSONL(f *testing.F) {
	for _, s := range []string{`{"text":"a"}`, `{"text":"\ud83d\ude02"}`, `{"text":"\ud800"}`, "{\"text\":\"\xff\"}", `{"text":"\\\\u"}`, `{"text":"\u"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ScanJSONL(strings.NewReader(string(b)), func(_ int, s string) error {
			if strings.ContainsRune(s, 0xfffd) && !strings.ContainsRune(string(b), 0xfffd) && !strings.Contains(strings.ToLower(string(b)), `\ufffd`) {
				t.Fatalf("U+FFFD appeared from %q", b)
			}
			return nil
		})
	})
}
