package tokenizer

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// encoder is the per-call state of EncodeTo. It lives on the caller's stack:
// the current word and the marks awaiting canonical ordering sit in fixed
// arrays, so a sentence is tokenised without touching the heap.
//
// Text flows through the same stages as in the tokenizers library, fused into
// one pass over the runes: clean text → isolate CJK → NFD and drop
// non-spacing marks → lower-case → split on whitespace and punctuation →
// WordPiece.
type encoder struct {
	t         *Tokenizer
	out       []int32
	limit     int  // len(out) may not pass limit before the suffix is added
	truncated bool // a token did not fit; stop reading

	// The current word's normalised bytes (its first maxChars runes) are
	// wordArr[:wlen], or spill when a configured max_input_chars_per_word
	// does not fit the array. (A slice into wordArr would make the encoder
	// point at itself and move it to the heap.)
	wordArr [4 * (DefaultMaxInputCharsPerWord + 1)]byte
	wlen    int
	spill   []byte
	spilled bool
	wrunes  int  // runes in the current word, counted past maxChars
	wfirst  rune // first rune, for the one-rune fast path

	// pending holds kept (spacing) non-starters until the next starter, so
	// that they come out in NFD's canonical order.
	pending [8]rune
	pccc    [8]uint8
	np      int
	// spillR and spillC continue pending past eight marks.
	spillR []rune
	spillC []uint8

	// words, when set (by tests), collects the pre-tokenized words instead
	// of ids, to compare the normaliser with the tokenizers library's.
	words *[]string
}

// ASCII character classes as the normaliser and pre-tokenizer see them.
const (
	aWord      = iota // letters, digits: part of a word
	aSpace            // space, \t, \n, \r: split
	aCtrlSpace        // \v, \f: dropped as control by clean text, else split
	aControl          // other C0 controls and DEL: dropped by clean text
	aPunct            // BERT punctuation: a word of its own
)

var asciiClass = func() (c [utf8.RuneSelf]uint8) {
	for i := range c {
		switch {
		case i == ' ' || i == '\t' || i == '\n' || i == '\r':
			c[i] = aSpace
		case i == '\v' || i == '\f':
			c[i] = aCtrlSpace
		case i < 0x20 || i == 0x7f:
			c[i] = aControl
		case i >= 33 && i <= 47, i >= 58 && i <= 64, i >= 91 && i <= 96, i >= 123 && i <= 126:
			c[i] = aPunct
		default:
			c[i] = aWord
		}
	}
	return c
}()

// emit appends one id unless the sentence is full.
func (e *encoder) emit(id int32) {
	if len(e.out) >= e.limit {
		e.truncated = true
		return
	}
	e.out = append(e.out, id)
}

// run tokenises text, cutting out added tokens (such as "[MASK]") that are
// matched verbatim before normalisation.
func (e *encoder) run(text string) {
	t := e.t
	for !e.truncated {
		if len(t.added) == 0 {
			e.segment(text)
			return
		}
		i, n, id := t.findAdded(text)
		if n == 0 {
			e.segment(text)
			return
		}
		e.segment(text[:i])
		e.emit(id)
		text = text[i+n:]
	}
}

// findAdded returns the leftmost, then longest, added token in s: its offset,
// length (0 when none) and id.
func (t *Tokenizer) findAdded(s string) (at, n int, id int32) {
	for i := 0; i < len(s); i++ {
		if t.addedByte >= 0 { // one first byte ('[' for BERT): let IndexByte scan
			j := strings.IndexByte(s[i:], byte(t.addedByte))
			if j < 0 {
				return 0, 0, 0
			}
			i += j
		} else if !t.addedFirst[s[i]] {
			continue
		}
		for _, a := range t.added {
			if len(a.content) > n && len(s)-i >= len(a.content) && s[i:i+len(a.content)] == a.content {
				n, id = len(a.content), a.id
			}
		}
		if n > 0 {
			return i, n, id
		}
	}
	return 0, 0, 0
}

// segment tokenises text that contains no added token.
func (e *encoder) segment(s string) {
	clean, lower := e.t.clean, e.t.lower
	for i := 0; i < len(s) && !e.truncated; {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Inline the three-byte case, which covers all of CJK.
			if c&0xf0 == 0xe0 && i+2 < len(s) && s[i+1]&0xc0 == 0x80 && s[i+2]&0xc0 == 0x80 {
				if r := rune(c&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f); r >= 0x800 && (r < 0xd800 || r > 0xdfff) {
					i += 3
					e.rune(r)
					continue
				}
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			i += n
			e.rune(r)
			continue
		}
		i++
		switch asciiClass[c] {
		case aWord:
			if e.np > 0 {
				e.flushPending()
			}
			if lower && c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			e.appendByte(c)
		case aSpace:
			e.split()
		case aPunct:
			e.split()
			e.single(rune(c))
		case aCtrlSpace:
			if !clean {
				e.split()
			}
		case aControl:
			if !clean {
				if e.np > 0 {
					e.flushPending()
				}
				e.appendByte(c)
			}
		}
	}
	e.split()
}

// split ends the current word, as whitespace does.
func (e *encoder) split() {
	if e.np > 0 {
		e.flushPending()
	}
	e.flushWord()
}

// rune handles one non-ASCII rune of the raw text (RuneError for bad bytes).
func (e *encoder) rune(r rune) {
	t := e.t
	// The CJK Unified Ideographs blocks: no decomposition, no case, not
	// space or punctuation; the bulk of Chinese text takes this path.
	if r >= 0x3400 && r <= 0x9fff && (r >= 0x4e00 || r <= 0x4dbf) {
		if t.chinese {
			e.split()
			e.single(r)
			return
		}
		if e.np > 0 {
			e.flushPending()
		}
		e.appendRune(r)
		return
	}
	p := t.propsOf(r)
	if p == 0 && r != utf8.RuneError { // a plain word character
		if e.np > 0 {
			e.flushPending()
		}
		e.appendRune(r)
		return
	}
	if t.clean {
		if r == utf8.RuneError || p&pControl != 0 {
			return
		}
		if p&pSpace != 0 {
			e.split()
			return
		}
	}
	if t.chinese && p&pChinese != 0 {
		// BERT pads the ideograph with spaces, so it is a word of its own
		// even after NFD maps a compatibility ideograph to its unified form.
		e.split()
		e.decompose(r, p)
		e.split()
		return
	}
	e.decompose(r, p)
}

// Hangul syllables decompose algorithmically (Unicode §3.12).
const (
	hangulBase  = 0xac00
	hangulLast  = 0xd7a3
	hangulLBase = 0x1100
	hangulVBase = 0x1161
	hangulTBase = 0x11a7
	hangulTN    = 28
	hangulNN    = 21 * hangulTN
)

// decompose applies NFD and drops non-spacing marks when accents are
// stripped, then passes the runes on in canonical order.
func (e *encoder) decompose(r rune, p uint8) {
	if !e.t.strip {
		e.post(r, p)
		return
	}
	if p&pNFD == 0 { // a starter that NFD leaves alone
		e.nfdRune(r, p, 0)
		return
	}
	if r >= hangulBase && r <= hangulLast {
		s := r - hangulBase
		e.nfdRune(hangulLBase+s/hangulNN, 0, 0) // jamo: plain letters
		e.nfdRune(hangulVBase+(s%hangulNN)/hangulTN, 0, 0)
		if tr := s % hangulTN; tr != 0 {
			e.nfdRune(hangulTBase+tr, 0, 0)
		}
		return
	}
	var b [utf8.UTFMax]byte
	n := utf8.EncodeRune(b[:], r)
	np := norm.NFD.Properties(b[:n])
	d := np.Decomposition()
	if d == nil || noDecomposition(r) {
		e.nfdRune(r, p, ccc9(r, np.CCC()))
		return
	}
	for len(d) > 0 {
		dr, dn := utf8.DecodeRune(d)
		e.nfdRune(dr, e.t.propsOf(dr), ccc9(dr, norm.NFD.Properties(d).CCC()))
		d = d[dn:]
	}
}

// nfdRune takes one rune of the NFD form with its canonical combining class.
// Non-spacing marks are dropped (accent stripping); other non-starters wait
// in pending so that a run of them is emitted sorted by class, as NFD's
// canonical ordering would leave them.
func (e *encoder) nfdRune(r rune, p, ccc uint8) {
	mn := p&pMn != 0
	if ccc == 0 {
		if e.np > 0 {
			e.flushPending()
		}
		if !mn {
			e.post(r, p)
		}
		return
	}
	if mn {
		return
	}
	if e.np < len(e.pending) {
		e.pending[e.np], e.pccc[e.np] = r, ccc
	} else { // a long run of spacing marks: continue on the heap
		if e.np == len(e.pending) {
			e.spillR = append(e.spillR[:0], e.pending[:]...)
			e.spillC = append(e.spillC[:0], e.pccc[:]...)
		}
		e.spillR = append(e.spillR, r)
		e.spillC = append(e.spillC, ccc)
	}
	e.np++
}

// flushPending emits the waiting non-starters in canonical (stable by
// class) order.
func (e *encoder) flushPending() {
	rs, cs := e.pending[:], e.pccc[:]
	if e.np > len(e.pending) {
		rs, cs = e.spillR, e.spillC
	}
	rs, cs = rs[:e.np], cs[:e.np]
	e.np = 0
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && cs[j-1] > cs[j]; j-- {
			cs[j-1], cs[j] = cs[j], cs[j-1]
			rs[j-1], rs[j] = rs[j], rs[j-1]
		}
	}
	for _, r := range rs {
		e.post(r, e.t.propsOf(r))
	}
}

// post lower-cases a normalised rune (with properties p) and hands it to
// the pre-tokenizer.
func (e *encoder) post(r rune, p uint8) {
	if e.t.lower && p&pLower != 0 {
		if r == 0x130 { // İ: the one rune whose full lower case is two runes
			e.pretok('i', 0)
			e.pretok(0x307, e.t.propsOf(0x307))
			return
		}
		r = toLower(r)
		p = e.t.propsOf(r)
	}
	e.pretok(r, p)
}

// pretok is the BertPreTokenizer: whitespace ends a word, punctuation is a
// word of its own, anything else extends the current word.
func (e *encoder) pretok(r rune, p uint8) {
	if r < utf8.RuneSelf {
		switch asciiClass[r] {
		case aSpace, aCtrlSpace:
			e.flushWord()
		case aPunct:
			e.flushWord()
			e.single(r)
		default:
			e.appendByte(byte(r))
		}
		return
	}
	switch {
	case p&pSpace != 0:
		e.flushWord()
	case p&pPunct != 0:
		e.flushWord()
		e.single(r)
	default:
		e.appendRune(r)
	}
}

// appendByte adds an ASCII byte to the current word.
func (e *encoder) appendByte(c byte) {
	e.wrunes++
	if e.wrunes == 1 {
		e.wfirst = rune(c)
	}
	if e.wrunes > e.t.vocab.maxChars {
		return
	}
	if !e.spilled && e.wlen < len(e.wordArr) {
		e.wordArr[e.wlen] = c
		e.wlen++
		return
	}
	e.spillTo()
	e.spill = append(e.spill, c)
}

// spillTo moves the current word to the heap buffer, for words longer than
// wordArr holds (only with max_input_chars_per_word above the default).
func (e *encoder) spillTo() {
	if !e.spilled {
		e.spill = append(e.spill[:0], e.wordArr[:e.wlen]...)
		e.spilled = true
	}
}

// wordBytes is the current word.
func (e *encoder) wordBytes() []byte {
	if e.spilled {
		return e.spill
	}
	return e.wordArr[:e.wlen]
}

// appendRune adds a rune to the current word.
func (e *encoder) appendRune(r rune) {
	e.wrunes++
	if e.wrunes == 1 {
		e.wfirst = r
	}
	if e.wrunes > e.t.vocab.maxChars {
		return
	}
	if !e.spilled && e.wlen+utf8.UTFMax <= len(e.wordArr) {
		e.wlen += utf8.EncodeRune(e.wordArr[e.wlen:], r)
		return
	}
	e.spillTo()
	e.spill = utf8.AppendRune(e.spill, r)
}

// single emits a one-rune word: an ideograph or a punctuation mark.
func (e *encoder) single(r rune) {
	if e.words != nil {
		*e.words = append(*e.words, string(r))
		return
	}
	e.emit(e.t.vocab.singleRune(r))
}

// flushWord runs WordPiece on the current word and emits its ids.
func (e *encoder) flushWord() {
	v := e.t.vocab
	switch {
	case e.wrunes == 0:
		return
	case e.words != nil:
		*e.words = append(*e.words, string(e.wordBytes()))
	case e.wrunes > v.maxChars:
		e.emit(v.unk)
	case e.wrunes == 1:
		e.emit(v.singleRune(e.wfirst))
	default:
		var buf [DefaultMaxInputCharsPerWord]int32
		dst := buf[:]
		if e.wrunes > len(buf) {
			dst = make([]int32, e.wrunes)
		}
		n := v.pieces(dst, e.wordBytes())
		for _, id := range dst[:n] {
			e.emit(id)
		}
	}
	e.wlen, e.wrunes = 0, 0
	e.spilled = false
	e.spill = e.spill[:0]
}

// isChinese is the CJK ideograph test of the tokenizers library's
// BertNormalizer. It differs from Google's original in one place: CJK
// Extension E starts at U+2B920 there, not U+2B820, and the reference ids come
// from that library, so that is what m3ectl reproduces.
func isChinese(r rune) bool {
	switch {
	case r >= 0x4e00 && r <= 0x9fff,
		r >= 0x3400 && r <= 0x4dbf,
		r >= 0x20000 && r <= 0x2a6df,
		r >= 0x2a700 && r <= 0x2b73f,
		r >= 0x2b740 && r <= 0x2b81f,
		r >= 0x2b920 && r <= 0x2ceaf,
		r >= 0xf900 && r <= 0xfaff,
		r >= 0x2f800 && r <= 0x2fa1f:
		return true
	}
	return false
}
