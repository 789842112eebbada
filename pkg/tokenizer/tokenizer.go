// Package tokenizer is an exact, allocation-free BERT WordPiece tokenizer in
// pure Go.
//
// It reproduces what transformers.BertTokenizer (the Hugging Face tokenizers
// library underneath) does for a single sentence: added special tokens such as
// "[MASK]" are matched in the raw text first, the rest goes through the
// BertNormalizer (clean text, isolate CJK ideographs, strip accents through
// NFD, lower-case), the BertPreTokenizer (split on whitespace, isolate
// punctuation) and WordPiece (greedy longest-match-first with a "##"
// continuation prefix), and the result is wrapped in [CLS] … [SEP] and
// truncated to MaxLength tokens, the two specials included.
//
// A Tokenizer is immutable after loading and safe for concurrent use; EncodeTo
// appends into a caller's buffer so that servers tokenise without allocating.
package tokenizer

//go:generate go run gen_tables.go -ucd /usr/share/unicode -o unicode8_tables.go

import (
	"slices"
	"unicode/utf8"
)

// DefaultMaxLength is the sequence length BERT models are trained with and
// the truncation length when none is configured.
const DefaultMaxLength = 512

// Options are the BertNormalizer and truncation settings. The zero value does
// no normalisation at all; DefaultOptions is what BERT checkpoints expect.
type Options struct {
	// Lower lower-cases the text (uncased checkpoints such as
	// bert-base-chinese and m3e-base).
	Lower bool
	// StripAccents decomposes to NFD and drops non-spacing marks. nil follows
	// Lower, as BERT does: uncased models strip accents, cased ones keep them.
	StripAccents *bool
	// ChineseChars isolates every CJK ideograph as a word of its own, so that
	// Chinese, which has no spaces, is tokenised character by character.
	ChineseChars bool
	// CleanText drops NUL, U+FFFD and control characters and turns every
	// whitespace character into a plain space.
	CleanText bool
	// MaxLength caps the number of ids per sentence, [CLS] and [SEP]
	// included; 0 means DefaultMaxLength.
	MaxLength int
}

// DefaultOptions is what transformers.BertTokenizer(vocab.txt) does: lower-case
// (and so strip accents), clean text, isolate CJK ideographs, 512 tokens.
func DefaultOptions() Options {
	return Options{Lower: true, ChineseChars: true, CleanText: true, MaxLength: DefaultMaxLength}
}

// stripAccents resolves the nil default of StripAccents.
func (o Options) stripAccents() bool {
	if o.StripAccents != nil {
		return *o.StripAccents
	}
	return o.Lower
}

// addedToken is a token matched verbatim in the raw text before
// normalisation, as the tokenizers library does for special tokens.
type addedToken struct {
	content string
	id      int32
}

// Tokenizer turns text into BERT input ids. It is immutable and safe for
// concurrent use.
type Tokenizer struct {
	vocab *vocabulary

	lower, strip, chinese, clean bool
	// stripSet says strip_accents was configured rather than following lower.
	stripSet  bool
	maxLength int

	// prefix and suffix are the post-processor's special ids around the
	// sentence, normally [CLS] and [SEP].
	prefix, suffix []int32
	// added are matched in the raw text and never split; addedFirst marks
	// the bytes they start with so that the scan is a table lookup.
	added      []addedToken
	addedFirst [256]bool
	addedByte  int // the one byte all added tokens start with, or -1

	props *[0x10000]uint8 // bmpProps, shared by all tokenizers
}

// Encode returns the ids of text: [CLS] … [SEP], truncated to MaxLength.
// Invalid UTF-8 bytes count as U+FFFD (which clean-text mode drops); callers
// that must reject invalid input check utf8.ValidString first.
func (t *Tokenizer) Encode(text string) []int32 {
	ids, _ := t.EncodeTo(make([]int32, 0, t.estimate(text)), text)
	return ids
}

// estimate is a capacity guess for Encode's result that avoids regrowth for
// typical text without over-allocating for long text.
func (t *Tokenizer) estimate(text string) int {
	n := utf8.RuneCountInString(text) + len(t.prefix) + len(t.suffix)
	if n > t.maxLength {
		n = t.maxLength
	}
	return n
}

// EncodeTo appends the ids of text to dst and reports whether the sentence was
// cut to fit MaxLength. It does not allocate once dst has room.
func (t *Tokenizer) EncodeTo(dst []int32, text string) (ids []int32, truncated bool) {
	// Room for the ids at once: a text yields about one id per character
	// at most (one per byte bounds it but for rare case mappings, where
	// append still grows), plus the specials, and at most maxLength; so a
	// sentence's ids are not re-grown five times over.
	if need := min(len(text)+len(t.prefix), t.maxLength) + len(t.suffix); cap(dst)-len(dst) < need {
		dst = slices.Grow(dst, need)
	}
	e := encoder{t: t, out: dst}
	e.limit = len(dst) + t.maxLength - len(t.suffix)
	for _, id := range t.prefix {
		e.emit(id)
	}
	e.run(text)
	e.out = append(e.out, t.suffix...)
	return e.out, e.truncated
}

// Tokens maps ids back to their vocabulary strings; ids outside the
// vocabulary come back as the unknown token.
func (t *Tokenizer) Tokens(ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.vocab.token(id)
	}
	return out
}

// VocabSize is one more than the largest id the tokenizer can produce, the
// size of the model's embedding table it must fit.
func (t *Tokenizer) VocabSize() int { return len(t.vocab.tokens) }

// MaxLength is the most ids Encode returns for one sentence, specials included.
func (t *Tokenizer) MaxLength() int { return t.maxLength }

// WithMaxLength returns a copy that truncates to n ids (n <= 0 means
// DefaultMaxLength). The copy shares the vocabulary, so this is cheap.
func (t *Tokenizer) WithMaxLength(n int) *Tokenizer {
	c := *t
	c.maxLength = c.clampMaxLength(n)
	return &c
}

// WithLowercase returns a copy with lower-casing switched on or off; accent
// stripping follows unless the configuration set it explicitly.
func (t *Tokenizer) WithLowercase(lower bool) *Tokenizer {
	c := *t
	if !c.stripSet {
		c.strip = lower
	}
	c.lower = lower
	return &c
}

// Options reports the normalisation settings in effect.
func (t *Tokenizer) Options() Options {
	o := Options{Lower: t.lower, ChineseChars: t.chinese, CleanText: t.clean, MaxLength: t.maxLength}
	if t.stripSet {
		strip := t.strip
		o.StripAccents = &strip
	}
	return o
}

// clampMaxLength keeps room for the specials plus one content token.
func (t *Tokenizer) clampMaxLength(n int) int {
	if n <= 0 {
		n = DefaultMaxLength
	}
	if min := len(t.prefix) + len(t.suffix) + 1; n < min {
		n = min
	}
	return n
}

// applyOptions sets the normaliser switches and truncation from o.
func (t *Tokenizer) applyOptions(o Options) {
	t.props = bmpProps()
	t.lower, t.strip, t.chinese, t.clean = o.Lower, o.stripAccents(), o.ChineseChars, o.CleanText
	t.stripSet = o.StripAccents != nil
	t.maxLength = t.clampMaxLength(o.MaxLength)
}
