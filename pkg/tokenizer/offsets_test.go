package tokenizer

import (
	"strings"
	"testing"
)

func TestTokenSpans(t *testing.T) {
	tok, err := Load("../../testdata/m3e-tiny/hf")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text  string
		texts []string // the content tokens' texts, as TEI slices them
	}{
		{"酒店很好, Hello!", []string{"酒", "店", "很", "好", ",", "Hello", "!"}},
		{"  Café  au lait", []string{"Café", "au", "la", "it"}},
		{"unaffable", nil},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			got := tok.TokenSpans(tc.text, true)
			ids := tok.Encode(tc.text)
			if len(got) != len(ids) {
				t.Fatalf("%d tokens, Encode gives %d", len(got), len(ids))
			}
			var texts []string
			for i, g := range got {
				if g.ID != ids[i] {
					t.Fatalf("token %d id %d, Encode gives %d", i, g.ID, ids[i])
				}
				if g.Special != (i == 0 || i == len(got)-1) {
					t.Fatalf("token %d special=%v", i, g.Special)
				}
				if !g.Special {
					if g.Text != tc.text[g.Start:g.Stop] {
						t.Fatalf("token %d text %q is not input[%d:%d]", i, g.Text, g.Start, g.Stop)
					}
					texts = append(texts, g.Text)
				}
			}
			if tc.texts != nil && strings.Join(texts, "|") != strings.Join(tc.texts, "|") {
				t.Fatalf("texts %q, want %q", texts, tc.texts)
			}
			// Pieces of a word cover it without gaps or overlaps.
			for i := 2; i < len(got)-1; i++ {
				if got[i].Start < got[i-1].Stop {
					t.Fatalf("token %d starts at %d inside token %d ending at %d", i, got[i].Start, i-1, got[i-1].Stop)
				}
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tok, err := Load("../../testdata/m3e-tiny/hf")
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("酒店很好, hello!")
	if got, want := tok.Decode(ids, true), "酒 店 很 好, hello!"; got != want {
		t.Errorf("Decode(skip) = %q, want %q", got, want)
	}
	if got := tok.Decode(ids, false); !strings.HasPrefix(got, "[CLS] ") || !strings.HasSuffix(got, " [SEP]") {
		t.Errorf("Decode(keep) = %q", got)
	}
}
