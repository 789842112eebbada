package safetensors

import (
	"encoding/binary"
	"math"
	"slices"
)

// HalfToFloat converts IEEE 754 binary16 bits to float32.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// FloatToHalf converts float32 to binary16 bits, rounding to nearest even as
// the GPU's conversion instructions do; out-of-range values become ±Inf.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		h := mant >> shift
		rem := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is the right result
	}
	return sign | uint16(h)
}

// floatToHalfRNE is FloatToHalf without its branches on the common path:
// the exponent is rebased and the rounding bias added in the integer
// domain, so a carry out of the mantissa lands in the exponent (and in Inf
// at the top) by itself; results that are subnormal in binary16 are
// rounded by a float addition that aligns their 10 bits at the bottom of
// the mantissa (the FPU rounds to nearest even). Equal to FloatToHalf for
// every float32 (TestHalfRNEMatches).
func floatToHalfRNE(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	b &= 0x7fffffff
	switch {
	case b >= 0x47800000: // ≥ 65536: Inf, NaN (quieted) or overflow
		if b > 0x7f800000 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case b < 0x38800000: // below 2^-14: a binary16 subnormal or zero
		const magic = 0x3f000000 // 0.5: its ulp is 2^-24, binary16's smallest step
		return sign | uint16(math.Float32bits(math.Float32frombits(b)+math.Float32frombits(magic))-magic)
	}
	odd := (b >> 13) & 1
	b += 0xc8000000 + 0xfff + odd // exponent −112 (mod 2^32), half an ulp less one, ties to even
	return sign | uint16(b>>13)
}

// HalfBytes appends t's values as little-endian binary16 to dst, converting
// straight from the stored bytes (no float32 slice between): the weight
// conversion of a GPU engine's start.
func (t *Tensor) HalfBytes(dst []byte) ([]byte, error) {
	n := t.Elements()
	d := t.Data
	switch t.DType {
	case "F16":
		return append(dst, d[:2*n]...), nil
	case "F32":
		off := len(dst)
		dst = slices.Grow(dst, 2*n)[:off+2*n]
		out, src := dst[off:], d[:4*n]
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint16(out[2*i:], floatToHalfRNE(math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))))
		}
		return dst, nil
	}
	v, err := t.Float32()
	if err != nil {
		return nil, err
	}
	for _, x := range v {
		h := FloatToHalf(x)
		dst = append(dst, byte(h), byte(h>>8))
	}
	return dst, nil
}
