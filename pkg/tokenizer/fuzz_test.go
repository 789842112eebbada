package tokenizer

import (
	"bytes"
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are the reference texts plus inputs that exercise the edges:
// marks without a base, runs of spacing marks, added tokens cut in half,
// invalid UTF-8.
func fuzzSeeds(f *testing.F) {
	for _, c := range reference(f) {
		f.Add(c.Text)
	}
	for _, s := range []string{"[MASK", "[[SEP]]", "\u0301\u0301a", "\u302e\u1d165\u0301\u302f", "a\xffb\xc0", "\u0130\u212b\uf900", string(rune(0x10ffff))} {
		f.Add(s)
	}
}

// FuzzEncode checks Encode's invariants on any input: no panic, the same
// ids every time and from EncodeTo onto a non-empty buffer, ids inside the
// vocabulary, at most MaxLength of them, [CLS] first and [SEP] last.
func FuzzEncode(f *testing.F) {
	fuzzSeeds(f)
	tok := fixtureTokenizer(f)
	short := tok.WithMaxLength(16)
	unbounded := tok.WithMaxLength(1 << 30)
	f.Fuzz(func(t *testing.T, text string) {
		for _, tk := range []*Tokenizer{tok, short} {
			ids := tk.Encode(text)
			if len(ids) < 2 || len(ids) > tk.MaxLength() {
				t.Fatalf("len %d outside [2, %d]", len(ids), tk.MaxLength())
			}
			if ids[0] != 101 || ids[len(ids)-1] != 102 {
				t.Fatalf("ids %v do not start with [CLS] and end with [SEP]", ids)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tk.VocabSize() {
					t.Fatalf("id %d outside the vocabulary", id)
				}
			}
			again, truncated := tk.EncodeTo([]int32{-1}, text)
			if !slices.Equal(again[1:], ids) {
				t.Fatalf("not deterministic: %v then %v", ids, again[1:])
			}
			// Truncation keeps a prefix of the untruncated ids and says so.
			full := unbounded.Encode(text)
			if truncated != (len(full) > tk.MaxLength()) {
				t.Fatalf("truncated = %v with %d ids of %d", truncated, len(ids), len(full))
			}
			if !slices.Equal(ids[:len(ids)-1], full[:len(ids)-1]) {
				t.Fatalf("truncated ids %v are not a prefix of %v", ids, full)
			}
		}
		// Invalid bytes behave as U+FFFD.
		if !utf8.ValidString(text) {
			fixed := string(bytes.ToValidUTF8([]byte(text), []byte("\ufffd")))
			if !slices.Equal(tok.Encode(text), tok.Encode(fixed)) {
				t.Fatalf("invalid UTF-8 not treated as U+FFFD")
			}
		}
	})
}

// FuzzTokenizerJSON feeds arbitrary bytes to the tokenizer.json parser: it
// must return an error or a tokenizer that encodes, never panic.
func FuzzTokenizerJSON(f *testing.F) {
	f.Add([]byte(`{"model":{"type":"WordPiece","vocab":{"[UNK]":0,"a":1}},"pre_tokenizer":{"type":"BertPreTokenizer"}}`))
	f.Add([]byte(`{"model":{"type":"WordPiece","vocab":{"[UNK]":0}},"pre_tokenizer":{"type":"BertPreTokenizer"},"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"X"}}],"special_tokens":{"X":{"ids":[5]}}}}`))
	f.Add([]byte(`{"model":{"type":"WordPiece","vocab":{"[UNK]":0}},"pre_tokenizer":{"type":"BertPreTokenizer"},"post_processor":{"type":"BertProcessing","cls":["a",0],"sep":["b"]}}`))
	f.Add([]byte(`{"added_tokens":[{"id":3,"content":"[X]"}],"truncation":{"max_length":-4},"model":{"type":"WordPiece","continuing_subword_prefix":"","max_input_chars_per_word":-1,"vocab":{"[UNK]":0,"ab":1}},"pre_tokenizer":{"type":"BertPreTokenizer"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := parseTokenizerJSON(b)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab [X] ab", "你好 wörld"} {
			ids := tok.Encode(s)
			if len(ids) > tok.MaxLength() {
				t.Fatalf("%d ids over MaxLength %d", len(ids), tok.MaxLength())
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("id %d outside the vocabulary of %d", id, tok.VocabSize())
				}
			}
		}
	})
}

// FuzzVocabFile feeds arbitrary bytes to the vocab.txt reader.
func FuzzVocabFile(f *testing.F) {
	f.Add([]byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n##b\n"))
	f.Add([]byte("[UNK]\r\n[CLS]\r\n[SEP]\r\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := readVocab(bytes.NewReader(b), DefaultOptions())
		if err != nil {
			return
		}
		ids := tok.Encode("ab [CLS] b")
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("id %d outside the vocabulary of %d", id, tok.VocabSize())
			}
		}
	})
}
