package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Argument layouts of the pickle opcodes, from CPython's Lib/pickle.py
// (protocols 0-5). fixed: that many argument bytes; lenN: an N-byte
// little-endian length, then that many bytes; lines: newline-terminated
// arguments.
type opArg struct{ fixed, lenN, lines int }

var pickleOps = func() map[byte]opArg {
	m := map[byte]opArg{}
	for _, op := range "(.012NQRabde}lo]stu)" {
		m[byte(op)] = opArg{}
	}
	for _, op := range []byte{0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98} {
		m[op] = opArg{}
	}
	for op, a := range map[byte]opArg{
		'F': {lines: 1}, 'I': {lines: 1}, 'L': {lines: 1}, 'P': {lines: 1}, 'S': {lines: 1}, 'V': {lines: 1},
		'g': {lines: 1}, 'p': {lines: 1}, 'c': {lines: 2}, 'i': {lines: 2},
		'J': {fixed: 4}, 'K': {fixed: 1}, 'M': {fixed: 2}, 'h': {fixed: 1}, 'j': {fixed: 4}, 'q': {fixed: 1},
		'r': {fixed: 4}, 'G': {fixed: 8}, 0x80: {fixed: 1}, 0x82: {fixed: 1}, 0x83: {fixed: 2}, 0x84: {fixed: 4},
		0x95: {fixed: 8}, // FRAME: its length only announces the opcodes that follow
		'T':  {lenN: 4}, 'U': {lenN: 1}, 'X': {lenN: 4}, 'B': {lenN: 4}, 'C': {lenN: 1},
		0x8a: {lenN: 1}, 0x8b: {lenN: 4}, 0x8c: {lenN: 1}, 0x8d: {lenN: 8}, 0x8e: {lenN: 8}, 0x96: {lenN: 8},
	} {
		m[op] = a
	}
	return m
}()

// scanPickle walks the opcodes of b up to STOP and checks that every
// length-prefixed argument fits in what is left, so that the decoder never
// allocates more than the pickle's own size from a forged length.
func scanPickle(b []byte) error {
	for i := 0; i < len(b); {
		op := b[i]
		a, ok := pickleOps[op]
		if !ok {
			return fmt.Errorf("unknown opcode 0x%02x at byte %d", op, i)
		}
		i++
		if op == '.' {
			return nil
		}
		switch {
		case a.fixed > 0:
			i += a.fixed
		case a.lenN > 0:
			if i+a.lenN > len(b) {
				return fmt.Errorf("truncated at byte %d", i)
			}
			var n uint64
			switch a.lenN {
			case 1:
				n = uint64(b[i])
			case 4:
				n = uint64(binary.LittleEndian.Uint32(b[i:]))
			case 8:
				n = binary.LittleEndian.Uint64(b[i:])
			}
			i += a.lenN
			if n > uint64(len(b)-i) {
				return fmt.Errorf("an argument of %d bytes at byte %d runs past the end", n, i)
			}
			i += int(n)
		default:
			for l := 0; l < a.lines; l++ {
				nl := bytes.IndexByte(b[i:], '\n')
				if nl < 0 {
					return fmt.Errorf("unterminated line at byte %d", i)
				}
				i += nl + 1
			}
		}
		if i > len(b) {
			return fmt.Errorf("truncated at byte %d", len(b))
		}
	}
	return fmt.Errorf("no STOP opcode")
}
