package serve

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/m3ectl/m3ectl/pkg/floatfmt"
)

// Responses are written by hand into pooled buffers: an m3e-base answer is
// 768 floats a row, and encoding/json's reflection over []float32 costs more
// than the rest of the request path together.

// maxPooledBuffer bounds what the pool keeps so that one huge response does
// not pin its memory for the life of the process.
const maxPooledBuffer = 4 << 20

var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	bufferPool.Put(b)
}

// appendFloat32s appends v as a JSON array of the shortest decimal forms
// that round-trip through float32 (strconv's, byte for byte). NaN and
// ±Inf, which JSON cannot carry, are written as null.
func appendFloat32s(b []byte, v []float32) []byte {
	b = append(b, '[')
	b = floatfmt.AppendFloat32s(b, v, ',', "null")
	return append(b, ']')
}

// appendFloat32LE appends v as little-endian IEEE-754 float32s, the layout
// of Triton's binary tensor data and of OpenAI's base64 embeddings.
func appendFloat32LE(b []byte, v []float32) []byte {
	if len(v) == 0 {
		return b
	}
	if littleEndian {
		// The float32s' memory is the wire layout already: one copy.
		return append(b, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))...)
	}
	b = slices.Grow(b, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// littleEndian is whether this machine stores a uint32's low byte first.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does, so the output is always valid JSON.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendInts appends v as a JSON array of integers.
func appendInts(b []byte, v ...int64) []byte {
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return append(b, ']')
}
