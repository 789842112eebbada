package serve

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// TestAppendFloat32LE: the one-copy layout is the little-endian bits of
// each float, after what the buffer held, NaN payloads and -0 included.
func TestAppendFloat32LE(t *testing.T) {
	v := []float32{0, float32(math.Copysign(0, -1)), 1, -0.5, 3.4028235e38, 1e-45,
		math.Float32frombits(0x7fc00001), float32(math.Inf(-1)), 0.012345678}
	var want []byte
	want = append(want, "head"...)
	for _, f := range v {
		want = binary.LittleEndian.AppendUint32(want, math.Float32bits(f))
	}
	if got := appendFloat32LE([]byte("head"), v); !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	if got := appendFloat32LE([]byte("head"), nil); string(got) != "head" {
		t.Fatalf("empty: %q", got)
	}
}
