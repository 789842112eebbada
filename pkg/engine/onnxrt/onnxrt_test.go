package onnxrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

const tolerance = 1e-5

var repoRoot = filepath.Join("..", "..", "..")

func fixture(p ...string) string {
	return filepath.Join(append([]string{repoRoot, "testdata"}, p...)...)
}

type refCase struct {
	Text      string    `json:"text"`
	InputIDs  []int32   `json:"input_ids"`
	Embedding []float32 `json:"embedding"`
}

func loadReference(t testing.TB) []refCase {
	t.Helper()
	data, err := os.ReadFile(fixture("m3e-tiny", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []refCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) == 0 {
		t.Fatal("reference.json has no cases")
	}
	return ref.Cases
}

// needORT skips when ONNX Runtime is not installed, except under CI, where
// its absence is a set-up bug that must fail the build.
func needORT(t testing.TB) {
	t.Helper()
	if err := Init(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but ONNX Runtime is unavailable: %v", err)
		}
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
}

func openFixture(t testing.TB, path string, o engine.Options) *Engine {
	t.Helper()
	needORT(t)
	m, err := engine.ResolveModel(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := OpenEngine(m, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

var fixtureModels = map[string]string{
	"opset11":         fixture("m3e-tiny", "model.onnx"),
	"dynamo-external": fixture("m3e-tiny", "dynamo", "model.onnx"),
}

func TestEmbedMatchesReference(t *testing.T) {
	cases := loadReference(t)
	for name, path := range fixtureModels {
		t.Run(name, func(t *testing.T) {
			e := openFixture(t, path, engine.Options{Threads: 1})
			if got := e.Info().Dim; got != len(cases[0].Embedding) {
				t.Fatalf("Dim = %d, want %d", got, len(cases[0].Embedding))
			}
			t.Run("one at a time", func(t *testing.T) {
				for i, c := range cases {
					got, err := e.Embed(context.Background(), engine.NewBatch([][]int32{c.InputIDs}))
					if err != nil {
						t.Fatalf("case %d: %v", i, err)
					}
					if d := maxDiff(got, c.Embedding); d > tolerance {
						t.Errorf("case %d (%q): max |Δ| = %g > %g", i, c.Text, d, tolerance)
					}
				}
			})
			t.Run("mixed-length batches", func(t *testing.T) {
				// All cases in one batch, and in batches of 7 so lengths mix differently.
				for _, size := range []int{len(cases), 7} {
					for start := 0; start < len(cases); start += size {
						chunk := cases[start:min(start+size, len(cases))]
						rows := make([][]int32, len(chunk))
						for i, c := range chunk {
							rows[i] = c.InputIDs
						}
						got, err := e.Embed(context.Background(), engine.NewBatch(rows))
						if err != nil {
							t.Fatal(err)
						}
						dim := e.Info().Dim
						for i, c := range chunk {
							if d := maxDiff(got[i*dim:(i+1)*dim], c.Embedding); d > tolerance {
								t.Errorf("batch %d, case %d (%q): max |Δ| = %g", size, start+i, c.Text, d)
							}
						}
					}
				}
			})
		})
	}
}

func TestPicksLastHiddenStateAmongOutputs(t *testing.T) {
	e := openFixture(t, fixtureModels["dynamo-external"], engine.Options{Threads: 1})
	if e.output != "output" {
		t.Errorf("picked output %q, want %q (not the pooler's tanh)", e.output, "output")
	}
	var names []string
	for _, in := range e.inputs {
		names = append(names, in.name)
	}
	sort.Strings(names)
	if len(names) != 2 || names[0] != "attention_mask" || names[1] != "input_ids" {
		t.Errorf("inputs = %v", names)
	}
}

func TestInt32InputsAndTokenTypes(t *testing.T) {
	cases := loadReference(t)
	needORT(t)
	e := openFixture(t, int32Variant(t), engine.Options{Threads: 1})
	if len(e.inputs) != 3 {
		t.Fatalf("inputs = %+v, want ids, mask and token types", e.inputs)
	}
	for _, in := range e.inputs {
		if !in.int32 {
			t.Errorf("input %s not detected as int32", in.name)
		}
	}
	rows := make([][]int32, len(cases))
	for i, c := range cases {
		rows[i] = c.InputIDs
	}
	got, err := e.Embed(context.Background(), engine.NewBatch(rows))
	if err != nil {
		t.Fatal(err)
	}
	dim := e.Info().Dim
	for i, c := range cases {
		if d := maxDiff(got[i*dim:(i+1)*dim], c.Embedding); d > tolerance {
			t.Errorf("case %d: max |Δ| = %g", i, d)
		}
	}
}

// TestSignaturesAgree: the graph signatures read by pkg/convert (the usual
// path) and by ONNX Runtime (the fallback) are the same.
func TestSignaturesAgree(t *testing.T) {
	needORT(t)
	for name, path := range fixtureModels {
		t.Run(name, func(t *testing.T) {
			r, err := convert.Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			ai, ao, err := signatures(path, r)
			if err != nil {
				t.Fatal(err)
			}
			bi, bo, err := signatures(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := fmt.Sprint(ai, ao), fmt.Sprint(bi, bo); a != b {
				t.Errorf("convert: %s\nonnxruntime: %s", a, b)
			}
		})
	}
}

// TestCancelledRunThenNormalRun: a cancelled context stops the run with the
// context's error, and the engine still works afterwards.
func TestCancelledRunThenNormalRun(t *testing.T) {
	cases := loadReference(t)
	e := openFixture(t, fixtureModels["opset11"], engine.Options{Threads: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := engine.NewBatch([][]int32{cases[0].InputIDs})
	if _, err := e.Embed(ctx, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: err = %v", err)
	}
	got, err := e.Embed(context.Background(), b)
	if err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	if d := maxDiff(got, cases[0].Embedding); d > tolerance {
		t.Errorf("max |Δ| = %g", d)
	}
}

func TestEmbedRejectsOutOfRangeIDs(t *testing.T) {
	e := openFixture(t, fixtureModels["opset11"], engine.Options{Threads: 1})
	for name, row := range map[string][]int32{
		"id past the vocabulary": {101, 21128, 102},
		"negative id":            {101, -1, 102},
		"row past the window":    make([]int32, 513),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.Embed(context.Background(), engine.NewBatch([][]int32{row})); err == nil {
				t.Fatal("Embed accepted the row")
			}
		})
	}
}
