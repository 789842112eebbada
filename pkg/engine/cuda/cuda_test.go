package cuda

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

const tinyDir = "../../../testdata/m3e-tiny"

// needGPU skips the test on machines without a GPU or the CUDA libraries.
func needGPU(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("no GPU: %v", err)
	}
}

func TestAvailableSaysWhatIsMissing(t *testing.T) {
	err := Available()
	if err == nil {
		t.Skip("a GPU is present")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v does not wrap ErrUnavailable", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "--engine cpu") || strings.Contains(msg, "\n") {
		t.Fatalf("want one line naming --engine cpu, got %q", msg)
	}
}

func TestRoundBucket(t *testing.T) {
	for _, c := range []struct{ in, min, want int }{
		{1, 16, 16}, {16, 16, 16}, {17, 16, 18}, {100, 16, 104}, {8704, 16, 9216}, {8192, 16, 8192}, {3, 1, 3}, {9, 1, 9}, {33, 1, 36},
	} {
		if got := roundBucket(c.in, c.min); got != c.want {
			t.Errorf("roundBucket(%d,%d) = %d, want %d", c.in, c.min, got, c.want)
		}
		if got := roundBucket(c.in, c.min); got < c.in || float64(got) > math.Max(float64(c.min), float64(c.in)*1.125) {
			t.Errorf("roundBucket(%d) = %d wastes more than 1/8", c.in, got)
		}
	}
}

func TestFillPacksShortRowsIntoOneTile(t *testing.T) {
	rows := [][]int32{make([]int32, 40), make([]int32, 60), make([]int32, 40), make([]int32, 128)}
	b := engine.NewBatch(rows)
	bk := bucketFor(b.Tokens(), b.Rows())
	in := make([]int32, bk.inputInts())
	fillInput(in, b, bk)
	_, _, tiles, counts := layout(bk)
	want := []int32{0, 100, 0, 100, 100, 40, 100, 40, 140, 128, 140, 128}
	if in[counts/4+1] != 3 {
		t.Fatalf("%d tiles, want 3", in[counts/4+1])
	}
	for i, w := range want {
		if in[tiles/4+i] != w {
			t.Fatalf("tiles %v, want %v", in[tiles/4:tiles/4+12], want)
		}
	}
}

func TestFillPacksRowsAndTiles(t *testing.T) {
	b := engine.NewBatch([][]int32{{101, 5, 102}, make([]int32, 260)})
	bk := bucketFor(b.Tokens(), b.Rows())
	in := make([]int32, bk.inputInts())
	fillInput(in, b, bk)
	pos, offs, tiles, counts := layout(bk)
	if got := in[pos/4+3 : pos/4+6]; got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Errorf("positions of row 1 start %v, want 0 1 2", got)
	}
	if in[offs/4+1] != 3 || in[offs/4+2] != 263 {
		t.Errorf("offsets %v", in[offs/4:offs/4+3])
	}
	// (qStart, qLen, kStart, kLen): the short row alone (the long row
	// closes its tile), then the long row in slices of 64 queries.
	wantTiles := []int32{0, 3, 0, 3, 3, 128, 3, 260, 131, 128, 3, 260, 259, 4, 3, 260}
	for i, w := range wantTiles {
		if in[tiles/4+i] != w {
			t.Fatalf("tiles %v, want %v", in[tiles/4:tiles/4+16], wantTiles)
		}
	}
	if in[counts/4] != 2 || in[counts/4+1] != 4 {
		t.Errorf("counts rows=%d tiles=%d, want 2 4", in[counts/4], in[counts/4+1])
	}
	if 4 > bk.tiles() {
		t.Errorf("bucket allows %d tiles, batch needs 4", bk.tiles())
	}
}

type fixtureCase struct {
	InputIDs  []int32   `json:"input_ids"`
	Embedding []float32 `json:"embedding"`
}

func loadFixture(t testing.TB) []fixtureCase {
	t.Helper()
	b, err := os.ReadFile(tinyDir + "/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ Cases []fixtureCase }
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref.Cases
}

// openTiny opens the fixture model on the GPU with conf and returns it with
// the fixture's cases and their token ids as one batch's rows.
func openTiny(t testing.TB, conf Config) (*Engine, []fixtureCase, [][]int32) {
	t.Helper()
	cases := loadFixture(t)
	m, err := engine.ResolveModel(tinyDir + "/hf")
	if err != nil {
		t.Fatal(err)
	}
	e, err := OpenConfig(m, engine.Options{}, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	rows := make([][]int32, len(cases))
	for i, fc := range cases {
		rows[i] = fc.InputIDs
	}
	return e, cases, rows
}

// TestTinyModelMatchesSentenceTransformers runs on the GPU machine: the
// fixture model's 30 texts, batched and one at a time, in fp32 and fp16.
func TestTinyModelMatchesSentenceTransformers(t *testing.T) {
	needGPU(t)
	for _, c := range []struct {
		name   string
		conf   Config
		maxAbs float64
		minCos float64
	}{
		{"fp32", Config{FP32: true}, 1e-4, 0.99999},
		{"fp32-nographs", Config{FP32: true, NoGraphs: true}, 1e-4, 0.99999},
		{"fp16", Config{}, 2e-3, 0.9999},
		{"fp16-exact-gelu", Config{ExactGELU: true}, 2e-3, 0.9999},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, cases, rows := openTiny(t, c.conf)
			dim := e.Info().Dim
			got, err := e.Embed(context.Background(), engine.NewBatch(rows))
			if err != nil {
				t.Fatal(err)
			}
			for i, fc := range cases {
				one, err := e.Embed(context.Background(), engine.NewBatch([][]int32{fc.InputIDs}))
				if err != nil {
					t.Fatal(err)
				}
				var dot, na, nb float64
				for j, want := range fc.Embedding {
					g := float64(got[i*dim+j])
					if d := math.Abs(g - float64(want)); d > c.maxAbs {
						t.Fatalf("case %d dim %d: batch %v, want %v (|Δ| %.2e)", i, j, g, want, d)
					}
					if d := math.Abs(float64(one[j]) - g); d > c.maxAbs {
						t.Fatalf("case %d dim %d: alone %v, in batch %v", i, j, one[j], g)
					}
					dot += g * float64(want)
					na += g * g
					nb += float64(want) * float64(want)
				}
				if cos := dot / math.Sqrt(na*nb); cos < c.minCos {
					t.Fatalf("case %d: cosine %.7f < %v", i, cos, c.minCos)
				}
			}
		})
	}
}

// TestGPUTimeMatchesEmbed checks the benchmark's device timing: positive,
// no more than Embed's wall time (which adds host work), and it leaves the
// engine able to embed the same batch correctly afterwards.
func TestGPUTimeMatchesEmbed(t *testing.T) {
	needGPU(t)
	e, _, rows := openTiny(t, Config{})
	b := engine.NewBatch(rows)
	before, err := e.Embed(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := e.GPUTime(b, 20)
	if err != nil {
		t.Fatal(err)
	}
	var wall []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		if _, err := e.Embed(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		wall = append(wall, time.Since(t0))
	}
	sort.Slice(wall, func(i, j int) bool { return wall[i] < wall[j] })
	w := float64(wall[len(wall)/2].Microseconds()) / 1e3
	if gpu <= 0 || gpu > w*1.5 {
		t.Fatalf("GPUTime %.3f ms against Embed wall p50 %.3f ms", gpu, w)
	}
	after, err := e.Embed(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("embedding %d changed after GPUTime: %v then %v", i, before[i], after[i])
		}
	}
}

// TestTilesBoundHoldsForAnyBatch: the bucket's tile bound (the attention
// grid) covers the tiles fill plans for any mix of row lengths, including
// the adversarial one (rows of 65 tokens, two of which never share a tile,
// between long rows); too few would leave rows unattended.
func TestTilesBoundHoldsForAnyBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(lens []int) {
		t.Helper()
		rows := make([][]int32, len(lens))
		for i, l := range lens {
			rows[i] = make([]int32, l)
		}
		b := engine.NewBatch(rows)
		bk := bucketFor(b.Tokens(), b.Rows())
		in := make([]int32, bk.inputInts())
		fillInput(in, b, bk)
		_, _, _, counts := layout(bk)
		if nt := int(in[counts/4+1]); nt > bk.tiles() {
			t.Fatalf("rows %v: %d tiles, the bound is %d", lens, nt, bk.tiles())
		}
		if int(in[counts/4]) != len(lens) {
			t.Fatalf("rows %v: count %d", lens, in[counts/4])
		}
	}
	check([]int{1})
	check([]int{65, 65, 65, 65, 65, 65})
	check([]int{129, 65, 65, 129, 65, 65, 129, 1, 128, 1, 128})
	for i := 0; i < 2000; i++ {
		n := 1 + rng.IntN(64)
		lens := make([]int, n)
		for j := range lens {
			switch rng.IntN(4) {
			case 0:
				lens[j] = 1 + rng.IntN(512)
			case 1:
				lens[j] = 64 + rng.IntN(3)
			case 2:
				lens[j] = 129 + rng.IntN(3)
			default:
				lens[j] = 2 + rng.IntN(30)
			}
		}
		check(lens)
	}
}
