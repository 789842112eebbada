package tokenizer

import (
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Portable is everything another implementation needs to tokenise exactly as
// this Tokenizer does, apart from the vocabulary file itself: the normaliser
// switches, WordPiece settings, special and added tokens, and the Unicode
// tables the normaliser consults (the tokenizers library mixes Unicode
// versions, see compat.go, so no interpreter's own tables can be trusted to
// agree). m3ectl repo writes it next to vocab.txt for the numpy-only Python
// tokenizer of the Triton repository.
type Portable struct {
	Lower        bool           `json:"lower"`
	StripAccents bool           `json:"strip_accents"`
	ChineseChars bool           `json:"chinese_chars"`
	CleanText    bool           `json:"clean_text"`
	MaxLength    int            `json:"max_length"`
	UnkToken     string         `json:"unk_token"`
	Prefix       string         `json:"continuing_subword_prefix"`
	MaxChars     int            `json:"max_input_chars_per_word"`
	Before       []int32        `json:"prefix_ids"` // [CLS]
	After        []int32        `json:"suffix_ids"` // [SEP]
	Added        []PortableTok  `json:"added_tokens"`
	Unicode      *UnicodeTables `json:"unicode"`
}

// PortableTok is a token matched verbatim in the raw text.
type PortableTok struct {
	Content string `json:"content"`
	ID      int32  `json:"id"`
}

// Property bits of UnicodeTables.Props, the ones props computes.
const (
	PropControl = pControl
	PropSpace   = pSpace
	PropPunct   = pPunct
	PropMn      = pMn
	PropChinese = pChinese
	PropNFD     = pNFD
	PropLower   = pLower
)

// UnicodeTables are the per-code-point facts the normaliser uses, for all
// scalar values.
type UnicodeTables struct {
	// Props is run-length encoded: pairs of (first code point, property
	// bits) sorted by code point; a run lasts until the next pair.
	Props []int32 `json:"props"`
	// Lower maps code points that lower-casing changes to their single-rune
	// lower case, as pairs (code point, lower case). U+0130 lower-cases to
	// "i" U+0307 and is not listed.
	Lower []int32 `json:"lower"`
	// NFD gives, for each code point with PropNFD other than Hangul
	// syllables (decomposed algorithmically), its canonical decomposition
	// as (code point, canonical combining class) pairs, the class as the
	// library's Unicode 9.0 tables have it.
	NFD map[int32][]int32 `json:"nfd"`
}

// Portable describes t for another implementation.
func (t *Tokenizer) Portable() *Portable {
	p := &Portable{
		Lower: t.lower, StripAccents: t.strip, ChineseChars: t.chinese, CleanText: t.clean,
		MaxLength: t.maxLength, UnkToken: t.vocab.unkToken, Prefix: t.vocab.prefix, MaxChars: t.vocab.maxChars,
		Before: append([]int32{}, t.prefix...), After: append([]int32{}, t.suffix...),
		Unicode: unicodeTables(),
	}
	for _, a := range t.added {
		p.Added = append(p.Added, PortableTok{Content: a.content, ID: a.id})
	}
	return p
}

// unicodeTables walks every scalar value once per process.
var unicodeTables = sync.OnceValue(func() *UnicodeTables {
	u := &UnicodeTables{NFD: map[int32][]int32{}}
	last := -1
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue // surrogates are not text; keep the run going
		}
		var pr uint8
		if r < 0x10000 {
			pr = bmpProps()[r]
		} else {
			pr = props(r)
		}
		if int(pr) != last {
			u.Props = append(u.Props, r, int32(pr))
			last = int(pr)
		}
		if pr&pLower != 0 && r != 0x130 {
			u.Lower = append(u.Lower, r, toLower(r))
		}
		if pr&pNFD != 0 && (r < hangulBase || r > hangulLast) {
			u.NFD[r] = decomposition(r)
		}
	}
	return u
})

// decomposition is what encoder.decompose hands to nfdRune for r.
func decomposition(r rune) []int32 {
	var b [utf8.UTFMax]byte
	n := utf8.EncodeRune(b[:], r)
	np := norm.NFD.Properties(b[:n])
	d := np.Decomposition()
	if d == nil || noDecomposition(r) {
		return []int32{r, int32(ccc9(r, np.CCC()))}
	}
	var out []int32
	for len(d) > 0 {
		dr, dn := utf8.DecodeRune(d)
		out = append(out, dr, int32(ccc9(dr, norm.NFD.Properties(d).CCC())))
		d = d[dn:]
	}
	return out
}

// PadID is the id of [PAD], the id padded positions carry (0 and false
// when the vocabulary has none).
func (t *Tokenizer) PadID() (int32, bool) {
	return t.vocab.id("[PAD]")
}
