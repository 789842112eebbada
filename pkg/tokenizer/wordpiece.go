package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultMaxInputCharsPerWord is WordPiece's limit: longer words become the
// unknown token without being split.
const DefaultMaxInputCharsPerWord = 100

// maxVocabSize bounds the id space a vocabulary file may claim, so that a
// corrupt file fails to load instead of exhausting memory.
const maxVocabSize = 1 << 24

// denseRunes is the size of the table that maps a one-rune word straight to
// its id: the Basic Multilingual Plane, which holds every CJK ideograph in
// common use, in 256 KiB.
const denseRunes = 0x10000

// vocabulary is a WordPiece vocabulary laid out for lookups that never
// allocate: Go does not copy the key of m[string(bytes)].
type vocabulary struct {
	tokens []string         // id → token
	words  map[string]int32 // every token, for the first piece of a word
	conts  map[string]int32 // continuation tokens keyed without their prefix
	// single maps a one-rune word below denseRunes to its id (-1: none), the
	// path every CJK ideograph takes.
	single []int32

	unk      int32
	unkToken string
	prefix   string
	maxChars int // max_input_chars_per_word
	// maxWord and maxCont are the longest keys in bytes, so that the
	// longest-match search starts at a length that can match.
	maxWord, maxCont int
}

// newVocabulary indexes vocab (token → id). size is the id space, at least one
// more than the largest id; tokens without an entry keep an empty string.
func newVocabulary(vocab map[string]int32, size int, unkToken, prefix string, maxChars int) (*vocabulary, error) {
	if maxChars <= 0 {
		maxChars = DefaultMaxInputCharsPerWord
	}
	v := &vocabulary{
		words:    make(map[string]int32, len(vocab)),
		conts:    make(map[string]int32),
		single:   make([]int32, denseRunes),
		unkToken: unkToken,
		prefix:   prefix,
		maxChars: maxChars,
	}
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("token %q has negative id %d", tok, id)
		}
		if int(id) >= size {
			size = int(id) + 1
		}
	}
	if size > maxVocabSize {
		return nil, fmt.Errorf("vocabulary claims %d ids, more than %d", size, maxVocabSize)
	}
	v.tokens = make([]string, size)
	for i := range v.single {
		v.single[i] = -1
	}
	for tok, id := range vocab {
		v.tokens[id] = tok
		v.words[tok] = id
		v.maxWord = max(v.maxWord, len(tok))
		if r, n := utf8.DecodeRuneInString(tok); n == len(tok) && r < denseRunes && (r != utf8.RuneError || n == 3) {
			v.single[r] = id
		}
		if prefix != "" && strings.HasPrefix(tok, prefix) {
			v.conts[tok[len(prefix):]] = id
			v.maxCont = max(v.maxCont, len(tok)-len(prefix))
		}
	}
	if prefix == "" {
		v.conts, v.maxCont = v.words, v.maxWord
	}
	unk, ok := v.words[unkToken]
	if !ok {
		return nil, fmt.Errorf("unknown token %q is not in the vocabulary", unkToken)
	}
	v.unk = unk
	return v, nil
}

// token is the string of id, or the unknown token for ids out of range.
func (v *vocabulary) token(id int32) string {
	if id < 0 || int(id) >= len(v.tokens) {
		return v.unkToken
	}
	return v.tokens[id]
}

// id returns the id of tok (any token, specials included).
func (v *vocabulary) id(tok string) (int32, bool) {
	id, ok := v.words[tok]
	return id, ok
}

// singleRune is the id of the word made of r alone, or the unknown token: a
// single rune cannot be split further.
func (v *vocabulary) singleRune(r rune) int32 {
	if r >= 0 && r < denseRunes {
		if id := v.single[r]; id >= 0 {
			return id
		}
		return v.unk
	}
	var b [utf8.UTFMax]byte
	n := utf8.EncodeRune(b[:], r)
	if id, ok := v.words[string(b[:n])]; ok {
		return id
	}
	return v.unk
}

// pieces splits word (normalised UTF-8, at most maxChars runes) greedily,
// longest match first, into dst and returns the number of ids written. A word
// with a part that matches nothing becomes the unknown token alone.
// dst must hold one id per rune of word.
func (v *vocabulary) pieces(dst []int32, word []byte) int {
	n := 0
	for start := 0; start < len(word); {
		m, limit := v.words, v.maxWord
		if start > 0 {
			m, limit = v.conts, v.maxCont
		}
		end := len(word)
		if end-start > limit {
			end = start + limit
			for end > start && !utf8.RuneStart(word[end]) {
				end--
			}
		}
		found := false
		for end > start {
			if id, ok := m[string(word[start:end])]; ok {
				dst[n] = id
				n++
				found = true
				break
			}
			end--
			for end > start && !utf8.RuneStart(word[end]) {
				end--
			}
		}
		if !found {
			dst[0] = v.unk
			return 1
		}
		start = end
	}
	return n
}
