package floatfmt

import (
	"math/big"
	"math/bits"
)

// Schubfach (Raffaello Giulietti, "The Schubfach way to render doubles",
// 2020, sections 8–10; the float variant of its reference implementation)
// finds the same shortest, closest digits as Ryū with three 64×64-bit
// products and a few comparisons, without Ryū's digit-removal loop: about
// half Ryū's instructions per float. It runs for normal float32s; the
// subnormals keep Ryū (rare, and Schubfach needs an extra scaling there).

const (
	sfQMin = -149 // exponent of the subnormals: v = c·2^q
	sfCMin = 1 << mantBits
	sfKMin = -45 // flog10pow2(sfQMin)
	sfKMax = 31  // flog10pow2(254 - 150)
)

// sfG[k-sfKMin] is g for 10^−k: the upper 63 bits of ⌊10^−k·2^(125−⌊log2 10^−k⌋)⌋+1,
// plus one (the paper's g1(k)+1), computed exactly once at start.
var sfG [sfKMax - sfKMin + 1]uint64

func init() {
	for k := sfKMin; k <= sfKMax; k++ {
		// β = 10^−k · 2^(125−r) with r = ⌊log2 10^−k⌋, so 2^125 ≤ β < 2^126.
		r := flog2pow10(-int64(k))
		num, den := big.NewInt(1), big.NewInt(1)
		ten := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(k))), nil)
		if k <= 0 {
			num.Set(ten)
		} else {
			den.Set(ten)
		}
		if s := 125 - r; s >= 0 {
			num.Lsh(num, uint(s))
		} else {
			den.Lsh(den, uint(-s))
		}
		g := new(big.Int).Quo(num, den)
		g.Add(g, big.NewInt(1))
		g.Rsh(g, 63)
		sfG[k-sfKMin] = g.Uint64() + 1
	}
}

func abs(k int) int {
	if k < 0 {
		return -k
	}
	return k
}

// flog10pow2 is ⌊q·log10 2⌋, flog10threeQuartersPow2 ⌊log10(¾·2^q)⌋ and
// flog2pow10 ⌊e·log2 10⌋, exact over the exponents used.
func flog10pow2(q int64) int64              { return q * 661_971_961_083 >> 41 }
func flog10threeQuartersPow2(q int64) int64 { return (q*661_971_961_083 - 274_743_187_321) >> 41 }
func flog2pow10(e int64) int64              { return e * 913_124_641_741 >> 38 }

// rop is the paper's rounding to odd of g·cp / 2^95 (as 32 bits).
func rop(g, cp uint64) uint32 {
	x1, _ := bits.Mul64(g, cp)
	return uint32(x1>>31 | (x1&0xffffffff+0xffffffff)>>32)
}

// sfScale is what Schubfach needs of a binary exponent whose float32s
// are not powers of two: g for k = ⌊log10 2^q⌋, and the shift h of the
// paper as the shift of the significand (h + 2) and of the half interval
// (2 << h).
type sfScale struct {
	g, half uint64
	shift   uint8
	k       int8
}

// sfScales[exp] is the sfScale of each normal biased exponent: the
// exponent's arithmetic done once at start instead of per number.
var sfScales [256]sfScale

func init() {
	for exp := 1; exp < 255; exp++ {
		q := int64(exp) - 150
		k := flog10pow2(q)
		h := q + flog2pow10(-k) + 33
		sfScales[exp] = sfScale{g: sfG[k-sfKMin], half: 2 << h, shift: uint8(h + 2), k: int8(k)}
	}
}

// schubfach returns the shortest digits d and exponent e (d·10^e) of the
// normal float32 with the given fraction and biased exponent, the closest
// such when several are shortest. d may end in zeros (layout drops them);
// 10^6 < d < 10^9.
func schubfach(mant, exp uint32) (uint32, int32) {
	c := uint64(sfCMin | mant)
	if mant != 0 {
		sc := &sfScales[exp&0xff]
		cb := c << (sc.shift & 63)
		return pick(rop(sc.g, cb), rop(sc.g, cb-sc.half), rop(sc.g, cb+sc.half), mant&1, 1), int32(sc.k)
	}
	// A power of two: the interval below is half as wide (unless the
	// exponent is the smallest normal one), so k and cbl differ.
	q := int64(exp) - 150
	cb := c << 2
	cbl := cb - 1
	k := flog10threeQuartersPow2(q)
	if exp == 1 { // the float32s below are subnormals, as close as those above
		cbl = cb - 2
		k = flog10pow2(q)
	}
	h := uint(q+flog2pow10(-k)+33) & 63
	g := sfG[k-sfKMin]
	return pick(rop(g, cb<<h), rop(g, cbl<<h), rop(g, (cb+2)<<h), 0, b2u(exp == 73)), int32(k)
}

// pick is Schubfach's choice of digits from the scaled value vb and the
// scaled interval bounds vbl and vbr (all times 4, rounded to odd): the
// shorter candidates u′ = sp10 or w′ = tp10 (one digit fewer) when exactly
// one is in the rounding interval, else u = s or w = t when exactly one is,
// else the closer. out is 1 when the bounds are outside the interval (odd
// significand). A tie goes to the even one when evenTie is 1 (strconv's
// rule), else up: at a power of two strconv's Dragonbox rounds ties up,
// but for its one exception at biased exponent 73 (see shortest).
//
// Every choice is computed and selected with conditional moves: which
// one wins depends on the number's low bits, which no branch predictor
// can learn.
func pick(vb, vbl, vbr, out, evenTie uint32) uint32 {
	s := vb >> 2
	// u = s is taken when it is inside and w = s+1 is not or is farther
	// (one of them is always inside: the interval is wider than 10^k).
	cmp := int32(vb - (4*s + 2))
	closerS := b2u(cmp < 0) | b2u(cmp == 0)&^s&evenTie
	d := s + 1
	if b2u(vbl+out <= 4*s)&(b2u(4*s+4+out > vbr)|closerS) != 0 {
		d = s
	}
	// One digit fewer: s′ = ⌊s/10⌋ (exact for s < 2^32 by the multiplier);
	// s > 10^6 for every normal float32.
	sp10 := 10 * uint32(uint64(s)*1_717_986_919>>34)
	upin := b2u(vbl+out <= 4*sp10)
	short := sp10 + 10
	if upin != 0 {
		short = sp10
	}
	if upin^b2u(4*sp10+40+out <= vbr) != 0 {
		d = short
	}
	return d
}

// b2u is 1 for true and 0 for false (a flag, not a branch).
func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// SchubfachTable returns the multipliers g for 10^−k, k from kMin up
// (sfG), for formatters that run elsewhere with the same arithmetic (the
// CUDA engine's text kernel, pkg/engine/cuda/textfmt.cu): the table is
// then this one, not a second copy to keep equal. The slice is a copy.
func SchubfachTable() (kMin int, g []uint64) {
	return sfKMin, append([]uint64(nil), sfG[:]...)
}
