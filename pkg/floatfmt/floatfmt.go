// Package floatfmt formats float32s the way strconv.AppendFloat(b,
// float64(f), 'g', -1, 32) does, byte for byte, two to three times as fast.
//
// Every JSON embedding is 768 such numbers (m3e-base), and formatting them
// was most of the server's CPU per request: strconv's general path (any
// precision, any format, float32 and float64 alike) costs more around its
// shortest-digits core than the core itself. This package finds the digits
// with Schubfach (schubfach.go; Ryū for subnormals, ryu.go) and writes the
// %g layout directly. The tests compare it with strconv over every float32
// of embedding magnitudes and random bit patterns.
//
// An embedding's numbers follow no pattern (sign, digit count, which of
// the candidate digit strings wins), so every choice that depends on a
// number's value is made without a branch: a mispredicted branch costs
// more than the rest of a number's work and stops the processor from
// overlapping one number's multiplications with the next one's.
package floatfmt

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

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
	if len(v) == 0 {
		return b
	}
	per := max(maxFloatLen, len(nonFinite)) + 1
	b = slices.Grow(b, per*len(v)+scratchLen)
	p := len(b)
	out := b[:cap(b)]
	for _, f := range v {
		u := math.Float32bits(f)
		if u&0x7f800000 == 0x7f800000 {
			p += copy(out[p:], nonFinite)
		} else {
			p += format(out[p:p+scratchLen], u)
		}
		out[p] = sep
		p++
	}
	return out[:p-1]
}

// maxFloatLen is the longest number format writes: "-0.0000ddddddddd".
const maxFloatLen = 16

// scratchLen is the room format works in.
const scratchLen = 32

// format writes the finite float32 of bits u at the start of out (which
// has room for scratchLen bytes) and returns its length.
func format(out []byte, u uint32) int {
	out = out[:scratchLen]
	mant := u & (1<<mantBits - 1)
	exp := (u >> mantBits) & (1<<expBits - 1)
	// The sign without a branch: a '-' that a positive number overwrites.
	out[0] = '-'
	p := int(u >> 31)
	var d uint32
	var e int32
	if exp != 0 {
		d, e = schubfach(mant, exp)
	} else {
		if mant == 0 {
			out[p] = '0'
			return p + 1
		}
		d, e = shortest(mant, exp) // subnormals: Ryū
	}
	return p + layout(out[p:p+scratchLen-1], d, e)
}

// layout writes d·10^e (0 < d < 10^9; d may end in zeros, which are not
// written) in %g's layout at the start of out (room for 31 bytes) and
// returns its length.
func layout(out []byte, d uint32, e int32) int {
	out = out[:scratchLen-1]
	hi := d / 100_000_000
	lo := eightDigits(d - hi*100_000_000)
	nd := decimalLen(d)
	// d's trailing zeros are the highest zero lanes of lo (all eight when
	// lo is zero; d ≠ 0 keeps the leading digit): nt digits are written.
	nt := nd - bits.LeadingZeros64(lo)>>3
	digits := lo + 0x3030303030303030
	dp := nd + int(e) // the decimal point's position
	if uint(dp+3) <= 3 {
		// 0.000ddd (−3 ≤ dp ≤ 0), every normalised embedding's number
		// under 1 and from 10^−4: "0." and up to four zeros in one store,
		// the digits behind them.
		binary.LittleEndian.PutUint64(out, 0x30303030_30302e30)
		w := 2 - dp
		putDigits(out[w:], hi, digits, nd)
		return w + nt
	}
	switch x := dp - 1; {
	case x < -4 || x >= 6:
		// d.ddde±XX: the digits one place right, the first moved before the point.
		putDigits(out[1:], hi, digits, nd)
		out[0] = out[1]
		p := 1
		if nt > 1 {
			out[1] = '.'
			p = nt + 1
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
			return p + 2
		case x < 100:
			out[p], out[p+1] = byte('0'+x/10), byte('0'+x%10)
			return p + 2
		}
		out[p], out[p+1], out[p+2] = byte('0'+x/100), byte('0'+x/10%10), byte('0'+x%10)
		return p + 3
	case dp >= nt:
		// dddd00 (dp ≤ 6): zeros over what was written past the digits.
		putDigits(out, hi, digits, nd)
		binary.LittleEndian.PutUint64(out[nt:], 0x3030303030303030)
		return dp
	}
	// ddd.ddd: the digits one place right, the integer part (dp ≤ 6
	// digits) moved back before the point.
	putDigits(out[1:], hi, digits, nd)
	for i := 0; i < dp; i++ {
		out[i] = out[i+1]
	}
	out[dp] = '.'
	return nt + 1
}

// putDigits writes the nd significant digits of a number below 10^9, given
// as its leading (ninth) digit hi and its other eight as ASCII lanes
// (eightDigits + '0'), at the start of dst, which has room for 9 bytes. No branch: hi is stored first and overwritten by the lanes unless
// the number has nine digits; the lanes' leading zeros are shifted out.
func putDigits(dst []byte, hi uint32, digits uint64, nd int) {
	dst = dst[:9]
	dst[0] = byte('0' + hi)
	t := 0
	if nd == 9 {
		t = 1
	}
	binary.LittleEndian.PutUint64(dst[t:], digits>>(8*uint(8-nd+t)&63))
}

// pow10s are the powers of ten below 2^32, for decimalLen.
var pow10s = [16]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// decimalLen is the number of decimal digits of 0 < d < 10^9, without a
// branch: ⌊log10 2^bitlen⌋ (bitlen·1233/4096), less one below that power.
func decimalLen(d uint32) int {
	l := uint(bits.Len32(d)) * 1233 >> 12
	n := int(l) + 1
	if d < pow10s[l&15] {
		n--
	}
	return n
}

// eightDigits returns the eight decimal digits of d < 10^8 as byte lanes
// (values 0–9, zero-padded, the most significant in the lowest byte): d is
// split into two halves of four digits, each into two of two, each into
// two digits, with multiplications that divide every lane by 100 or 10 at
// once (exact for these ranges).
func eightDigits(d uint32) uint64 {
	x := uint64(d/10000) | uint64(d%10000)<<32
	hundreds := (x * 10486 >> 20) & 0x0000007F0000007F // each 32-bit lane / 100
	x = hundreds | (x-hundreds*100)<<16
	tens := (x * 103 >> 10) & 0x000F000F000F000F // each 16-bit lane / 10
	return tens | (x-tens*10)<<8
}
