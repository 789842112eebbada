// Package floatfmt formats float32s the way strconv.AppendFloat(b,
// float64(f), 'g', -1, 32) does, byte for byte, about twice as fast.
//
// Every JSON embedding is 768 such numbers (m3e-base), and formatting them
// was most of the server's CPU per request: strconv's general path (any
// precision, any format, float32 and float64 alike) costs more around its
// shortest-digits core than the core itself. This package runs Ryū's
// float32 algorithm (Ulf Adams, "Ryū: fast float-to-string conversion",
// PLDI 2018, section 3 and the f2s variant) on 64-bit multiplications and
// writes the %g layout directly. The tests compare it with strconv over
// every float32 of embedding magnitudes and random bit patterns.
package floatfmt

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
	"slices"
)

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

// AppendFloat32 appends f as strconv.AppendFloat(b, float64(f), 'g', -1,
// 32) would: the shortest decimal that reads back as f, in %e form when
// its exponent is below −4 or at least 6 ("1e+06", "1.5e-05"). Unlike
// append it may write up to 32 bytes of b's spare capacity past what it
// appends (the digits are written in place, eight at a time).
func AppendFloat32(b []byte, f float32) []byte {
	u := math.Float32bits(f)
	if u&0x7f800000 == 0x7f800000 {
		switch {
		case u&(1<<mantBits-1) != 0:
			return append(b, "NaN"...)
		case u>>31 != 0:
			return append(b, "-Inf"...)
		}
		return append(b, "+Inf"...)
	}
	// The scratch is b's spare capacity when there is enough (the usual
	// case: a large output buffer), so that the digits are written once,
	// in place.
	n := len(b)
	if cap(b)-n < scratchLen {
		b = slices.Grow(b, scratchLen)
	}
	return b[:n+format(b[n:n+scratchLen], u)]
}

// AppendFloat32s appends v's numbers as AppendFloat32 would, separated by
// sep, with nonFinite in place of each NaN or infinity (JSON's "null"): a
// whole embedding in one call, the room for it reserved once. Like
// AppendFloat32 it may write up to 32 bytes of spare capacity past what it
// appends.
func AppendFloat32s(b []byte, v []float32, sep byte, nonFinite string) []byte {
	per := max(maxFloatLen, len(nonFinite)) + 1
	b = slices.Grow(b, per*len(v)+scratchLen)
	p := len(b)
	out := b[:cap(b)]
	for i, f := range v {
		if i > 0 {
			out[p] = sep
			p++
		}
		u := math.Float32bits(f)
		if u&0x7f800000 == 0x7f800000 {
			p += copy(out[p:], nonFinite)
			continue
		}
		p += format(out[p:p+scratchLen], u)
	}
	return out[:p]
}

// maxFloatLen is the longest number format writes: "-0.0000ddddddddd".
const maxFloatLen = 16

// format writes the finite float32 of bits u at the start of out (which
// has room for scratchLen bytes) and returns its length.
func format(out []byte, u uint32) int {
	neg := u>>31 != 0
	mant := u & (1<<mantBits - 1)
	exp := (u >> mantBits) & (1<<expBits - 1)
	p := 0
	if neg {
		out[0] = '-'
		p = 1
	}
	if exp == 0 && mant == 0 {
		out[p] = '0'
		return p + 1
	}
	var d uint32
	var e int32
	if exp != 0 {
		d, e = schubfach(mant, exp)
	} else {
		d, e = shortest(mant, exp) // subnormals: Ryū
	}
	nd := decimalLen(d)
	// The longest form is "-0.0000ddddddddd" or "-d.dddddddde-45"; the
	// scratch has room for an 8-byte digit store at any position used.
	dp := nd + int(e) // decimal point position
	switch x := dp - 1; {
	case x < -4 || x >= 6:
		// d.ddde±XX: the digits one place right, the first moved before the point.
		writeDigits(out[p+1:], d, nd)
		out[p] = out[p+1]
		if nd > 1 {
			out[p+1] = '.'
			p += nd + 1
		} else {
			p++
		}
		out[p] = 'e'
		out[p+1] = '+'
		if x < 0 {
			out[p+1] = '-'
			x = -x
		}
		p += 2
		switch {
		case x < 10:
			out[p], out[p+1] = '0', byte('0'+x)
			p += 2
		case x < 100:
			out[p], out[p+1] = byte('0'+x/10), byte('0'+x%10)
			p += 2
		default:
			out[p], out[p+1], out[p+2] = byte('0'+x/100), byte('0'+x/10%10), byte('0'+x%10)
			p += 3
		}
	case dp <= 0:
		// 0.000ddd: at most four zeros after the point (x ≥ −4 here),
		// "0." and the zeros in one store.
		binary.LittleEndian.PutUint64(out[p:], 0x30303030_30302e30)
		p += 2 - dp
		if nd <= 8 { // the usual case, without the call
			binary.LittleEndian.PutUint64(out[p:], eightDigits(d)>>(8*uint(8-nd)))
		} else {
			writeDigits(out[p:], d, nd)
		}
		p += nd
	case dp >= nd:
		// dddd00 (dp ≤ 6): the zeros over what writeDigits left past the digits.
		writeDigits(out[p:], d, nd)
		binary.LittleEndian.PutUint64(out[p+nd:], 0x3030303030303030)
		p += dp
	default:
		// ddd.ddd: the digits one place right, the integer part moved back.
		writeDigits(out[p+1:], d, nd)
		copy(out[p:p+dp], out[p+1:p+1+dp])
		out[p+dp] = '.'
		p += nd + 1
	}
	return p
}

// scratchLen is the room AppendFloat32 works in.
const scratchLen = 32

// decimalLen is the number of decimal digits of d (d < 10^10).
func decimalLen(d uint32) int {
	switch {
	case d >= 100000000:
		if d >= 1000000000 {
			return 10
		}
		return 9
	case d >= 10000:
		switch {
		case d >= 10000000:
			return 8
		case d >= 1000000:
			return 7
		case d >= 100000:
			return 6
		}
		return 5
	case d >= 100:
		if d >= 1000 {
			return 4
		}
		return 3
	case d >= 10:
		return 2
	}
	return 1
}

// writeDigits writes the nd decimal digits of d (d < 10^10) at the
// start of dst, which has room for nd+8 bytes.
func writeDigits(dst []byte, d uint32, nd int) {
	if nd > 8 {
		// The leading one or two digits, then eight.
		hi := d / 100000000
		d -= hi * 100000000
		if nd == 10 {
			dst[0], dst[1] = byte('0'+hi/10), byte('0'+hi%10)
			dst = dst[2:]
		} else {
			dst[0] = byte('0' + hi)
			dst = dst[1:]
		}
		nd = 8
	}
	// Eight digits at once in a uint64 (leading zeros included, the first
	// digit in the lowest byte), then the leading zeros shifted out.
	v := eightDigits(d) >> (8 * uint(8-nd))
	binary.LittleEndian.PutUint64(dst, v)
}

// eightDigits returns the eight ASCII digits of d < 10^8, zero-padded, the
// most significant in the lowest byte: d is split into two halves of four
// digits, each into two of two, each into two digits, with multiplications
// that divide every lane by 100 or 10 at once (exact for these ranges).
func eightDigits(d uint32) uint64 {
	x := uint64(d/10000) | uint64(d%10000)<<32
	hundreds := (x * 10486 >> 20) & 0x0000007F0000007F // each 32-bit lane / 100
	x = hundreds | (x-hundreds*100)<<16
	tens := (x * 103 >> 10) & 0x000F000F000F000F // each 16-bit lane / 10
	x = tens | (x-tens*10)<<8
	return x + 0x3030303030303030
}
