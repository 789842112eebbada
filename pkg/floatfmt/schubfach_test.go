package floatfmt

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSchubfachMatchesRyu compares the two digit finders on every normal
// float32 at a stride, every power of two and random bit patterns.
func TestSchubfachMatchesRyu(t *testing.T) {
	cmp := func(u uint32) {
		mant, exp := u&(1<<mantBits-1), (u>>mantBits)&0xff
		if exp == 0 || exp == 0xff {
			return
		}
		d1, e1 := shortest(mant, exp)
		d2, e2 := schubfach(mant, exp)
		if d1 != d2 || e1 != e2 {
			t.Fatalf("%#08x (%v): ryu %de%d, schubfach %de%d", u, math.Float32frombits(u), d1, e1, d2, e2)
		}
	}
	for u := uint32(1 << 23); u < 0x7f800000; u += 4099 {
		cmp(u)
	}
	for e := uint32(1); e < 255; e++ {
		for _, m := range []uint32{0, 1, 2, 3, 1<<23 - 1, 1<<23 - 2, 1 << 22} {
			cmp(e<<23 | m)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 200_000; i++ {
		cmp(r.Uint32() & 0x7fffffff)
	}
}
