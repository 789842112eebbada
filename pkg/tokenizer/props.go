package tokenizer

import (
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Rune properties the normaliser and pre-tokenizer ask about, as the
// tokenizers library sees them (see compat.go). A rune with none of them is
// a plain word character under every setting, the common case outside ASCII
// and CJK, and takes the shortest path.
const (
	pControl = 1 << iota // removed by clean text (Cc, Cf, Co as of Unicode 8.0)
	pSpace               // whitespace: splits words
	pPunct               // punctuation: a word of its own
	pMn                  // non-spacing mark: dropped by accent stripping
	pChinese             // CJK ideograph: a word of its own
	pNFD                 // decomposes under NFD, or is a non-starter there
	pLower               // lower-casing changes it
)

// props computes the property bits of r.
func props(r rune) uint8 {
	var p uint8
	if unicode.Is(control8, r) {
		p |= pControl
	}
	if unicode.IsSpace(r) {
		p |= pSpace
	}
	if unicode.Is(punct8, r) {
		p |= pPunct
	}
	if unicode.Is(mn8, r) {
		p |= pMn
	}
	if isChinese(r) {
		p |= pChinese
	}
	if r >= hangulBase && r <= hangulLast {
		p |= pNFD
	} else if utf8.ValidRune(r) {
		var b [utf8.UTFMax]byte
		n := utf8.EncodeRune(b[:], r)
		np := norm.NFD.Properties(b[:n])
		if (np.Decomposition() != nil && !noDecomposition(r)) || ccc9(r, np.CCC()) != 0 {
			p |= pNFD
		}
	}
	if r == 0x130 || toLower(r) != r {
		p |= pLower
	}
	return p
}

// bmpProps holds props for the Basic Multilingual Plane, built once (a few
// milliseconds) when the first tokenizer loads.
var bmpProps = sync.OnceValue(func() *[0x10000]uint8 {
	var t [0x10000]uint8
	for r := range t {
		t[r] = props(rune(r))
	}
	return &t
})

// propsOf looks r's properties up, computing them outside the BMP.
func (t *Tokenizer) propsOf(r rune) uint8 {
	if r < 0x10000 {
		return t.props[r]
	}
	return props(r)
}
