package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestEncodeUnseenText pins text the reference does not cover, on the
// bert-base-chinese vocabulary. Each expectation follows from BERT's
// algorithm as the tokenizers library implements it (see the notes).
func TestEncodeUnseenText(t *testing.T) {
	tok := fixtureTokenizer(t)
	tests := []struct {
		name, text string
		want       []string // tokens between [CLS] and [SEP]
	}{
		{"ascii punctuation next to CJK is split off", "你好,世界!", []string{"你", "好", ",", "世", "界", "!"}},
		{"apostrophe is punctuation", "don't", []string{"don", "'", "t"}},
		{"accents stripped after NFD, then lower-cased", "Ångström", []string{"an", "##gs", "##tro", "##m"}},
		{"dotted capital I loses its dot", "İstanbul", []string{"is", "##tan", "##bu", "##l"}},
		{"sigma lower-cases per rune, no final form", "ΣΑΣ", []string{"σ", "##α", "##σ"}},
		{"sharp s has no decomposition", "ß", []string{"ß"}},
		{"combining accent and precomposed agree", "e\u0301 é", []string{"e", "e"}},
		{"angstrom sign decomposes to A with ring", "\u212b", []string{"a"}},
		{"full-width letters stay full-width, full-width punctuation splits", "ＡＢＣ１２３！？", []string{"ａ", "##ｂ", "##ｃ", "##１", "##２", "##３", "！", "？"}},
		{"emoji ZWJ removed, variation selector stripped, unknown emoji", "👍🏻❤️\u200d🔥 🥰", []string{"[UNK]", "[UNK]"}},
		{"known emoji", "👍", []string{"👍"}},
		{"NUL, ZWSP, soft hyphen, NEL dropped; LINE SEPARATOR splits", "a\x00b\u200bc\u00add\u0085e\u2028f", []string{"abc", "##de", "f"}},
		{"byte order mark dropped", "\ufeffBOM", []string{"bo", "##m"}},
		{"ideographic and no-break spaces split", "Hello\u3000world\u00a0!", []string{"hello", "world", "!"}},
		{"mixed CJK and latin", "中文English混合mixed文本", []string{"中", "文", "english", "混", "合", "mix", "##ed", "文", "本"}},
		{"long word greedy longest match", "supercalifragilisticexpialidocious", []string{"super", "##cal", "##if", "##ra", "##gi", "##list", "##ice", "##xp", "##ial", "##id", "##oc", "##ious"}},
		{"special tokens matched verbatim before lower-casing", "x[MASK]y [UNK] [cls] [SEP]", []string{"x", "[MASK]", "y", "[UNK]", "[", "cl", "##s", "]", "[SEP]"}},
		{"hangul decomposes to jamo", "한국어", []string{"ᄒ", "##ᅡ", "##ᆫ", "##ᄀ", "##ᅮ", "##ᆨ", "##ᄋ", "##ᅥ"}},
		{"katakana is not CJK: one word", "カタカナ", []string{"カ", "##タ", "##カ", "##ナ"}},
		{"half-width katakana is not decomposed by NFD", "ｶﾀｶﾅ", []string{"[UNK]"}},
		{"CJK compatibility ideograph maps to its unified form", "\uf900", []string{tok.Tokens([]int32{tok.Encode("\u8c48")[1]})[0]}},
		{"ideographs outside the vocabulary are unknown one by one", "𠀀𪜀", []string{"[UNK]", "[UNK]"}},
		{"U+2B820 is outside the tokenizers library's Extension E range", "a\U0002B820b", []string{"[UNK]"}},
		{"roman numeral lower-cases, circled digit and superscript kept", "Ⅻ ① ²", []string{"[UNK]", "①", "²"}},
		{"unicode quotes, dashes and inverted question mark are punctuation", "«fr» —¿", []string{"«", "f", "##r", "»", "[UNK]", "[UNK]"}},
		{"currency signs are symbols, not punctuation", "¥200 $100", []string{"¥", "##200", "$", "100"}},
		{"101-rune word is unknown", strings.Repeat("a", 101), []string{"[UNK]"}},
		{"control characters only", "\x01\x7f\u200b", nil},
		{"invalid UTF-8 bytes are U+FFFD and dropped", "ab\xffcd", []string{"abc", "##d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids := tok.Encode(tc.text)
			got := tok.Tokens(ids)
			want := append(append([]string{"[CLS]"}, tc.want...), "[SEP]")
			if !slices.Equal(got, want) {
				t.Errorf("Encode(%q) = %q, want %q", tc.text, got, want)
			}
		})
	}
}

// writeVocab writes a small vocab.txt (with the BERT specials first) and
// returns its path.
func writeVocab(t *testing.T, tokens ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vocab.txt")
	all := append([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}, tokens...)
	if err := os.WriteFile(p, []byte(strings.Join(all, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func tokensOf(tok *Tokenizer, text string) []string {
	ids := tok.Encode(text)
	return tok.Tokens(ids[1 : len(ids)-1])
}

func TestWordPiece(t *testing.T) {
	vocab := writeVocab(t, "un", "##aff", "##able", "##a", "a", "b", "##b", "Café", "cafe", "!", "x", "中", "Ab", "\x01")
	tests := []struct {
		name string
		o    func(*Options)
		text string
		want []string
	}{
		{"greedy longest match with continuation", nil, "unaffable", []string{"un", "##aff", "##able"}},
		{"an unmatched remainder makes the whole word unknown", nil, "unaffablez", []string{"[UNK]"}},
		{"first piece must not use the continuation form", nil, "aff", []string{"[UNK]"}},
		{"exactly 100 runes are split", nil, strings.Repeat("a", 100), append([]string{"a"}, slices.Repeat([]string{"##a"}, 99)...)},
		{"101 runes are unknown", nil, strings.Repeat("b", 101), []string{"[UNK]"}},
		{"default lower-cases and strips accents", nil, "CAFÉ!", []string{"cafe", "!"}},
		{"no lower, no strip keeps the cased word", func(o *Options) { o.Lower = false }, "Café!", []string{"Café", "!"}},
		{"lower without strip keeps the accent", func(o *Options) { f := false; o.StripAccents = &f }, "CAFÉ", []string{"[UNK]"}},
		{"strip without lower", func(o *Options) { tr := true; o.Lower = false; o.StripAccents = &tr }, "Ab", []string{"Ab"}},
		{"without chinese chars an ideograph joins the word", func(o *Options) { o.ChineseChars = false }, "x中", []string{"[UNK]"}},
		{"with chinese chars an ideograph is its own word", nil, "x中", []string{"x", "中"}},
		{"without clean text control characters stay in words", func(o *Options) { o.CleanText = false }, "\x01", []string{"\x01"}},
		{"without clean text U+FFFD is unknown", func(o *Options) { o.CleanText = false }, "\xff", []string{"[UNK]"}},
		{"without clean text vertical tab still splits", func(o *Options) { o.CleanText = false }, "a\vb", []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			if tc.o != nil {
				tc.o(&o)
			}
			tok, err := FromVocabFile(vocab, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := tokensOf(tok, tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("Encode(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	tok := fixtureTokenizer(t)
	long := reference(t)[24].Text
	tests := []struct {
		name          string
		max           int
		text          string
		wantLen       int
		wantTruncated bool
	}{
		{"default 512", 0, long, 512, true},
		{"short text untouched", 8, "你好", 4, false},
		{"exact fit is not truncation", 4, "你好", 4, false},
		{"one over", 3, "你好", 3, true},
		{"cut inside a word's pieces", 4, "unaffable", 4, true},
		{"below the minimum is raised to specials plus one", 1, "你好", 3, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tt := tok.WithMaxLength(tc.max)
			ids, truncated := tt.EncodeTo(nil, tc.text)
			if len(ids) != tc.wantLen || truncated != tc.wantTruncated {
				t.Errorf("len %d truncated %v, want %d %v", len(ids), truncated, tc.wantLen, tc.wantTruncated)
			}
			full := tok.Encode(tc.text)
			if len(ids) > 1 && !slices.Equal(ids[:len(ids)-1], full[:len(ids)-1]) || ids[len(ids)-1] != 102 {
				t.Errorf("truncated ids %v are not a prefix of %v plus [SEP]", ids, full)
			}
		})
	}
	if tok.MaxLength() != 512 {
		t.Errorf("WithMaxLength changed the original: %d", tok.MaxLength())
	}
}

func TestEncodeToAppendsWithoutAllocating(t *testing.T) {
	tok := fixtureTokenizer(t)
	dst := []int32{7, 7}
	got, _ := tok.EncodeTo(dst, "你好")
	if want := []int32{7, 7, 101, 872, 1962, 102}; !slices.Equal(got, want) {
		t.Fatalf("EncodeTo = %v, want %v", got, want)
	}
	buf := make([]int32, 0, 1024)
	texts := append([]string{"The quick brown fox", "Café naïve 한국어 ＡＢＣ", "x[MASK]y"}, shortChinese...)
	allocs := testing.AllocsPerRun(100, func() {
		for _, s := range texts {
			buf, _ = tok.EncodeTo(buf[:0], s)
		}
	})
	if allocs != 0 {
		t.Errorf("EncodeTo allocates %.1f times per run, want 0", allocs)
	}
}

// TestConcurrentEncode shares one tokenizer between goroutines (run with
// -race): it must be immutable after loading.
func TestConcurrentEncode(t *testing.T) {
	tok := fixtureTokenizer(t)
	cases := reference(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			var buf []int32
			for _, c := range cases {
				buf, _ = tok.EncodeTo(buf[:0], c.Text)
				if !slices.Equal(buf, c.InputIDs) {
					t.Errorf("concurrent Encode(%q) differs", c.Text)
				}
			}
		})
	}
	wg.Wait()
}

// TestCanonicalOrdering pins NFD's reordering of the marks accent stripping
// keeps (spacing marks with a combining class), on runs longer than the
// encoder's fixed buffer; the expectation is the tokenizers library's.
func TestCanonicalOrdering(t *testing.T) {
	tok := fixtureTokenizer(t)
	tests := []struct {
		name, text string
		want       string
	}{
		{"sorted by class, Mn dropped", "a\u302e\u1b44\U0001d165\u0301b", "a\u1b44\U0001d165\u302eb"},
		{"28 marks", "a" + strings.Repeat("\u302e\u1b44\U0001d165\u0301", 7) + "b",
			"a" + strings.Repeat("\u1b44", 7) + strings.Repeat("\U0001d165", 7) + strings.Repeat("\u302e", 7) + "b"},
		{"a starter ends the run", "a\u302e\u1b44x\u302e\u1b44", "a\u1b44\u302ex\u1b44\u302e"},
		{"marks newer than Unicode 9.0 are starters to the library", "a\U0001d16d\u1df6\U0001193d\U00016ff1", "a\U0001d16d\u1df6\U0001193d\U00016ff1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tok.words(tc.text); len(got) != 1 || got[0] != tc.want {
				t.Errorf("words(%+q) = %+q, want [%+q]", tc.text, got, tc.want)
			}
		})
	}
}
