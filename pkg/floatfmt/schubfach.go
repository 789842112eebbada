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

// schubfach returns the shortest digits d and exponent e (d·10^e) of the
// normal float32 with the given fraction and biased exponent.
func schubfach(mant, exp uint32) (uint32, int32) {
	q := int64(exp) - 150
	c := uint64(sfCMin | mant)
	out := uint32(c & 1)
	cb := c << 2
	cbr := cb + 2
	var cbl uint64
	var k int64
	if c != sfCMin || q == sfQMin {
		cbl = cb - 2
		k = flog10pow2(q)
	} else {
		cbl = cb - 1
		k = flog10threeQuartersPow2(q)
	}
	h := q + flog2pow10(-k) + 33
	g := sfG[k-sfKMin]
	vb := rop(g, cb<<uint(h))
	vbl := rop(g, cbl<<uint(h))
	vbr := rop(g, cbr<<uint(h))
	s := vb >> 2
	if s >= 100 {
		// One digit fewer: s′ = ⌊s/10⌋ (exact for s < 2^32 by the multiplier).
		sp10 := 10 * uint32(uint64(s)*1_717_986_919>>34)
		tp10 := sp10 + 10
		upin := vbl+out <= sp10<<2
		wpin := tp10<<2+out <= vbr
		if upin != wpin {
			d := tp10
			if upin {
				d = sp10
			}
			return trimZeros(d/10, int32(k)+1)
		}
	}
	t := s + 1
	uin := vbl+out <= s<<2
	win := t<<2+out <= vbr
	if uin != win {
		if uin {
			return trimZeros(s, int32(k))
		}
		return trimZeros(t, int32(k))
	}
	// Both in the interval: the closer. A tie rounds to even as strconv
	// does, except at a power of two (c = 2^23, the shorter interval
	// below), where strconv's Dragonbox rounds it up, but for its one
	// exception at biased exponent 73 (see shortest).
	cmp := int64(vb) - int64(s+t)<<1
	if cmp < 0 || cmp == 0 && s&1 == 0 && (c != sfCMin || exp == 73) {
		return trimZeros(s, int32(k))
	}
	return trimZeros(t, int32(k))
}

// trimZeros drops d's trailing zeros into the exponent.
func trimZeros(d uint32, e int32) (uint32, int32) {
	for d != 0 && d%10 == 0 {
		d /= 10
		e++
	}
	return d, e
}
