package floatfmt

import (
	"math/big"
	"math/bits"
)

// Ryū (Ulf Adams, "Ryū: fast float-to-string conversion", PLDI 2018,
// section 3 and the f2s variant) on 64-bit multiplications: the digit
// finder for subnormal float32s (normal ones use Schubfach, schubfach.go),
// and the reference Schubfach is tested against.

const (
	mantBits = 23
	expBits  = 8
	bias     = 127

	pow5InvBitCount = 59
	pow5BitCount    = 61
)

// pow5Inv[q] = ⌊2^(pow5bits(q)−1+59) / 5^q⌋ + 1 and pow5[i] =
// ⌊5^i / 2^(pow5bits(i)−61)⌋: the multipliers of Ryū's float32 tables,
// computed exactly once at start rather than pasted in.
var pow5Inv, pow5 [64]uint64

func init() {
	five := big.NewInt(5)
	p := big.NewInt(1)
	for i := 0; i < len(pow5); i++ {
		// pow5
		bitsI := int(pow5bits(int32(i)))
		v := new(big.Int).Set(p)
		if s := bitsI - pow5BitCount; s >= 0 {
			v.Rsh(v, uint(s))
		} else {
			v.Lsh(v, uint(-s))
		}
		if v.BitLen() <= 64 {
			pow5[i] = v.Uint64()
		}
		// pow5Inv
		num := new(big.Int).Lsh(big.NewInt(1), uint(bitsI-1+pow5InvBitCount))
		num.Quo(num, p)
		num.Add(num, big.NewInt(1))
		if num.BitLen() <= 64 {
			pow5Inv[i] = num.Uint64()
		}
		p.Mul(p, five)
	}
}

// pow5bits is ⌈log2(5^e)⌉ for e ≥ 1 and 1 for e = 0.
func pow5bits(e int32) int32 { return int32((uint32(e)*1217359)>>19) + 1 }

// log10Pow2 is ⌊log10(2^e)⌋, log10Pow5 ⌊log10(5^e)⌋ (0 ≤ e ≤ 1650).
func log10Pow2(e int32) int32 { return int32((uint32(e) * 78913) >> 18) }
func log10Pow5(e int32) int32 { return int32((uint32(e) * 732923) >> 20) }

// mulShift is ⌊m·factor / 2^shift⌋ truncated to 32 bits; shift is at least
// 32 for every float32. The shift counts are masked so that the compiler
// emits bare shifts, without Go's handling of counts past the width.
func mulShift(m uint32, factor uint64, shift int32) uint32 {
	hi, lo := bits.Mul64(uint64(m), factor)
	if shift >= 64 {
		return uint32(hi >> (uint(shift-64) & 63))
	}
	return uint32(hi<<(uint(64-shift)&63) | lo>>(uint(shift)&63))
}

func multipleOfPowerOf5(v uint32, p int32) bool {
	n := int32(0)
	for v%5 == 0 {
		v /= 5
		n++
	}
	return n >= p
}

func multipleOfPowerOf2(v uint32, p int32) bool { return v&(1<<uint(p)-1) == 0 }

// shortest returns the shortest decimal digits d and exponent e with
// d·10^e reading back as the float32 of the given bits (finite, nonzero),
// the closest such when several are shortest.
func shortest(mant, exp uint32) (uint32, int32) {
	var e2 int32
	var m2 uint32
	if exp == 0 {
		e2 = 1 - bias - mantBits - 2
		m2 = mant
	} else {
		e2 = int32(exp) - bias - mantBits - 2
		m2 = 1<<mantBits | mant
	}
	acceptBounds := m2&1 == 0
	mv := 4 * m2
	mp := 4*m2 + 2
	mmShift := uint32(0)
	if mant != 0 || exp <= 1 {
		mmShift = 1
	}
	mm := 4*m2 - 1 - mmShift

	var vr, vp, vm uint32
	var e10 int32
	vmTrailingZeros, vrTrailingZeros := false, false
	lastRemoved := uint32(0)
	if e2 >= 0 {
		q := log10Pow2(e2)
		e10 = q
		k := pow5InvBitCount + pow5bits(q) - 1
		i := -e2 + q + k
		vr = mulShift(mv, pow5Inv[q], i)
		vp = mulShift(mp, pow5Inv[q], i)
		vm = mulShift(mm, pow5Inv[q], i)
		if q != 0 && (vp-1)/10 <= vm/10 {
			// One removed digit is needed even if the loop below removes none.
			l := pow5InvBitCount + pow5bits(q-1) - 1
			lastRemoved = mulShift(mv, pow5Inv[q-1], -e2+q-1+l) % 10
		}
		if q <= 9 {
			// At most one of mp, mv and mm is a multiple of 5.
			switch {
			case mv%5 == 0:
				vrTrailingZeros = multipleOfPowerOf5(mv, q)
			case acceptBounds:
				vmTrailingZeros = multipleOfPowerOf5(mm, q)
			case multipleOfPowerOf5(mp, q):
				vp--
			}
		}
	} else {
		q := log10Pow5(-e2)
		e10 = q + e2
		i := -e2 - q
		k := pow5bits(i) - pow5BitCount
		j := q - k
		vr = mulShift(mv, pow5[i], j)
		vp = mulShift(mp, pow5[i], j)
		vm = mulShift(mm, pow5[i], j)
		if q != 0 && (vp-1)/10 <= vm/10 {
			j = q - 1 - (pow5bits(i+1) - pow5BitCount)
			lastRemoved = mulShift(mv, pow5[i+1], j) % 10
		}
		if q <= 1 {
			// mv = 4·m2 has at least two trailing zero bits; mp = mv+2 one;
			// mm = mv−1−mmShift one exactly when mmShift is 1.
			vrTrailingZeros = true
			if acceptBounds {
				vmTrailingZeros = mmShift == 1
			} else {
				vp--
			}
		} else if q < 31 {
			vrTrailingZeros = multipleOfPowerOf2(mv, q-1)
		}
	}

	removed := int32(0)
	var out uint32
	if vmTrailingZeros || vrTrailingZeros {
		// The rare general case (a few percent of inputs).
		for vp/10 > vm/10 {
			vmTrailingZeros = vmTrailingZeros && vm%10 == 0
			vrTrailingZeros = vrTrailingZeros && lastRemoved == 0
			lastRemoved = vr % 10
			vr, vp, vm = vr/10, vp/10, vm/10
			removed++
		}
		if vmTrailingZeros {
			for vm%10 == 0 {
				vrTrailingZeros = vrTrailingZeros && lastRemoved == 0
				lastRemoved = vr % 10
				vr, vp, vm = vr/10, vp/10, vm/10
				removed++
			}
		}
		// An exact tie (…50…0) rounds to even, as Ryū and strconv's
		// Dragonbox do, except at a power of two, where strconv's
		// shorter-interval path (Dragonbox algorithm 5.6) rounds ties up,
		// but for its one exception (binary exponent −77).
		if vrTrailingZeros && lastRemoved == 5 && vr%2 == 0 && (mant != 0 || exp == 0 || exp == 73) {
			lastRemoved = 4
		}
		out = vr
		if (vr == vm && (!acceptBounds || !vmTrailingZeros)) || lastRemoved >= 5 {
			out++
		}
	} else {
		// Only the last removed digit matters here, so two can go at
		// once (Ryū's d2s does the same): most float32s lose one or two.
		roundUp := lastRemoved >= 5
		if vp/100 > vm/100 {
			roundUp = vr%100 >= 50
			vr, vp, vm = vr/100, vp/100, vm/100
			removed += 2
		}
		for vp/10 > vm/10 {
			roundUp = vr%10 >= 5
			vr, vp, vm = vr/10, vp/10, vm/10
			removed++
		}
		out = vr
		if vr == vm || roundUp {
			out++
		}
	}
	return out, e10 + removed
}
