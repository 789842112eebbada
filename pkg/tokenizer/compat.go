package tokenizer

import "unicode"

// The tokenizers library mixes Unicode versions: categories come from tables
// frozen at Unicode 8.0 (unicode8_tables.go), lower-casing from the Rust
// standard library (Unicode 16 and later), NFD and canonical ordering from
// tables at Unicode 9.0.
// Go's unicode package is at 15.0. This file bridges the difference; every
// code point has been compared with the library (see oracle_test.go).

// toLower is Rust's char::to_lowercase for the single-rune cases: Go's simple
// mapping plus the case pairs Unicode added after 15.0.
func toLower(r rune) rune {
	if r < 0x1c89 {
		return unicode.ToLower(r)
	}
	switch {
	case r == 0x1c89: // CYRILLIC CAPITAL LETTER TJE
		return 0x1c8a
	case r == 0xa7cb: // LATIN CAPITAL LETTER RAMS HORN
		return 0x0264
	case r == 0xa7cc, r == 0xa7ce, r == 0xa7d2, r == 0xa7d4, r == 0xa7da:
		return r + 1
	case r == 0xa7dc: // LATIN CAPITAL LETTER LAMBDA WITH STROKE
		return 0x019b
	case r >= 0x10d50 && r <= 0x10d65: // GARAY capitals
		return r + 0x20
	case r >= 0x16ea0 && r <= 0x16eb8: // BERIA ERFE capitals
		return r + 0x1b
	}
	return unicode.ToLower(r)
}

// noDecomposition lists code points with a canonical decomposition in Go's
// tables that the library's NFD leaves whole.
func noDecomposition(r rune) bool {
	return r == 0x11938 // DIVES AKURU VOWEL SIGN O
}

// ccc9 is the canonical combining class the library's NFD (Unicode 9.0
// tables) gives r, whose current class is ccc: marks assigned later are
// starters there.
func ccc9(r rune, ccc uint8) uint8 {
	if ccc != 0 && unicode.Is(nonStarterAfter9, r) {
		return 0
	}
	return ccc
}
