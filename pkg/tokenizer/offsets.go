package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Token is one id of an encoding with the bytes of the input it came from,
// the record text-embeddings-inference's /tokenize answers
// (core/src/tokenization.rs@v1.9.3 into_tokens): special tokens carry their
// vocabulary string and no offsets.
type Token struct {
	ID      int32
	Text    string
	Special bool
	// Start and Stop are byte offsets into the input; -1 for specials.
	Start, Stop int
}

// IsSpecial reports whether id is one of the post-processor's specials
// ([CLS], [SEP]) or an added token such as [MASK].
func (t *Tokenizer) IsSpecial(id int32) bool {
	for _, s := range t.prefix {
		if s == id {
			return true
		}
	}
	for _, s := range t.suffix {
		if s == id {
			return true
		}
	}
	for _, a := range t.added {
		if a.id == id {
			return true
		}
	}
	return false
}

// Specials are the ids the post-processor puts before and after a sentence.
func (t *Tokenizer) Specials() (prefix, suffix []int32) {
	return append([]int32(nil), t.prefix...), append([]int32(nil), t.suffix...)
}

// EncodeBody returns the ids of text without specials and without
// truncation, for callers that truncate themselves (from the left, say).
func (t *Tokenizer) EncodeBody(text string) []int32 {
	e := encoder{t: t, out: make([]int32, 0, utf8.RuneCountInString(text))}
	e.limit = int(^uint(0) >> 1)
	e.run(text)
	return e.out
}

// Tokens returns text's encoding (specials included when withSpecials,
// truncated to MaxLength) with the byte span of the input behind every
// content token.
//
// The spans come from the encoder itself rather than a second, offset-aware
// implementation: token k ends at the shortest prefix of text whose
// encoding starts with the first k+1 ids of the whole text's. Pre-tokenised
// words never straddle a split point that the full text does not have, so
// the first prefix that reproduces a token is the one that ends where it
// does. It costs one encoding per input rune up to the last token, which is
// fine for an inspection endpoint and bounded by MaxLength.
func (t *Tokenizer) TokenSpans(text string, withSpecials bool) []Token {
	body := t.EncodeBody(text)
	room := t.maxLength
	if withSpecials {
		room -= len(t.prefix) + len(t.suffix)
	}
	if room >= 0 && len(body) > room {
		body = body[:room]
	}
	out := make([]Token, 0, len(body)+len(t.prefix)+len(t.suffix))
	if withSpecials {
		for _, id := range t.prefix {
			out = append(out, Token{ID: id, Text: t.vocab.token(id), Special: true, Start: -1, Stop: -1})
		}
	}
	ends := t.tokenEnds(text, body)
	start := 0
	for k, id := range body {
		stop := ends[k]
		s := skipSpace(text, start, stop)
		out = append(out, Token{ID: id, Text: text[s:stop], Special: t.isAdded(id), Start: s, Stop: stop})
		start = stop
	}
	if withSpecials {
		for _, id := range t.suffix {
			out = append(out, Token{ID: id, Text: t.vocab.token(id), Special: true, Start: -1, Stop: -1})
		}
	}
	return out
}

func (t *Tokenizer) isAdded(id int32) bool {
	for _, a := range t.added {
		if a.id == id {
			return true
		}
	}
	return false
}

// tokenEnds finds, for each id of body, the byte offset where its text ends.
func (t *Tokenizer) tokenEnds(text string, body []int32) []int {
	ends := make([]int, len(body))
	k := 0
	buf := make([]int32, 0, len(body)+1)
	for i := 0; i <= len(text) && k < len(body); {
		if i > 0 {
			e := encoder{t: t, out: buf[:0]}
			e.limit = int(^uint(0) >> 1)
			e.run(text[:i])
			buf = e.out
			for k < len(body) && prefixEqual(buf, body, k) {
				ends[k] = i
				k++
			}
		}
		if i == len(text) {
			break
		}
		_, n := utf8.DecodeRuneInString(text[i:])
		i += n
	}
	for ; k < len(body); k++ { // not reached for valid input; keep spans sane
		ends[k] = len(text)
	}
	return ends
}

// prefixEqual reports whether a[:k+1] == b[:k+1].
func prefixEqual(a, b []int32, k int) bool {
	if len(a) <= k || len(b) <= k {
		return false
	}
	for i := 0; i <= k; i++ {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// skipSpace moves start past whitespace and control characters (which the
// normaliser drops) but not past stop.
func skipSpace(text string, start, stop int) int {
	for start < stop {
		r, n := utf8.DecodeRuneInString(text[start:])
		if !unicode.IsSpace(r) && !unicode.IsControl(r) && r != utf8.RuneError {
			break
		}
		start += n
	}
	return start
}

// Decode turns ids back into text as the tokenizers library's WordPiece
// decoder does (decoders/wordpiece.rs: tokens joined by spaces, "##"
// continuations glued to the previous token, then cleanup of the spaces
// before punctuation and English contractions). skipSpecial drops [CLS],
// [SEP], [PAD] and added tokens.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	var b strings.Builder
	first := true
	for _, id := range ids {
		if skipSpecial && (t.IsSpecial(id) || t.vocab.token(id) == "[PAD]") {
			continue
		}
		tok := t.vocab.token(id)
		if p := t.vocab.prefix; p != "" && strings.HasPrefix(tok, p) && !first {
			b.WriteString(tok[len(p):])
		} else {
			if !first {
				b.WriteByte(' ')
			}
			b.WriteString(tok)
		}
		first = false
	}
	return cleanup(b.String())
}

// cleanupPairs are the tokenizers library's clean_up_tokenization rules.
var cleanupPairs = strings.NewReplacer(
	" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'",
	" n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re",
)

func cleanup(s string) string { return cleanupPairs.Replace(s) }
