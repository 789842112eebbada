package floatfmt

import (
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
)

// trimZeros drops d's trailing zeros into the exponent (Ryū's form;
// schubfach leaves them to layout).
func trimZeros(d uint32, e int32) (uint32, int32) {
	for d != 0 && d%10 == 0 {
		d /= 10
		e++
	}
	return d, e
}

// TestSchubfachMatchesRyu compares the two digit finders on every normal
// float32 at a stride, every power of two and random bit patterns.
func TestSchubfachMatchesRyu(t *testing.T) {
	cmp := func(u uint32) {
		mant, exp := u&(1<<mantBits-1), (u>>mantBits)&0xff
		if exp == 0 || exp == 0xff {
			return
		}
		d1, e1 := shortest(mant, exp)
		d2, e2 := trimZeros(schubfach(mant, exp))
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

// TestSchubfachAllNormals compares the two digit finders on every normal
// float32 (Ryū is the independent reference: pick relies on one of its two
// candidates always being inside the rounding interval). About a minute of
// CPU spread over the cores; FLOATFMT_EXHAUSTIVE=1 only.
func TestSchubfachAllNormals(t *testing.T) {
	if os.Getenv("FLOATFMT_EXHAUSTIVE") != "1" {
		t.Skip("FLOATFMT_EXHAUSTIVE=1 checks every normal float32")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []uint32
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for exp := uint32(1 + w); exp < 255; exp += uint32(workers) {
				for mant := uint32(0); mant < 1<<mantBits; mant++ {
					d1, e1 := shortest(mant, exp)
					d2, e2 := trimZeros(schubfach(mant, exp))
					if d1 != d2 || e1 != e2 {
						mu.Lock()
						bad = append(bad, exp<<mantBits|mant)
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d normal float32s differ, the first %#08x", len(bad), bad[0])
	}
}
