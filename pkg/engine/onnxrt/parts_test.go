package onnxrt

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

func TestPartsStayWithinBudgets(t *testing.T) {
	rowsOf := func(lens ...int) *engine.Batch {
		rows := make([][]int32, len(lens))
		for i, l := range lens {
			rows[i] = make([]int32, l)
		}
		return engine.NewBatch(rows)
	}
	e := &Engine{attentionBudget: 4 * 512 * 512, tokenBudget: 4096}
	for _, c := range []struct {
		name string
		b    *engine.Batch
		want []int // where each part ends
	}{
		{"32 short texts: one part", rowsOf(repeat(32, 30)...), []int{32}},
		{"32 full windows: parts of 4", rowsOf(repeat(32, 512)...), []int{4, 8, 12, 16, 20, 24, 28, 32}},
		{"128 tokens: the token budget", rowsOf(repeat(40, 128)...), []int{32, 40}},
		{"long rows pad the short ones before them", rowsOf(30, 30, 30, 512, 512, 512, 512), []int{4, 7}},
		{"one row over both budgets still runs", rowsOf(2000, 10), []int{1, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []int
			for lo := 0; lo < c.b.Rows(); {
				hi := e.parts(c.b, lo)
				seq := 0
				for i := lo; i < hi; i++ {
					seq = max(seq, len(c.b.Row(i)))
				}
				if n := hi - lo; n > 1 && (n*seq*seq > e.attentionBudget || n*seq > e.tokenBudget) {
					t.Errorf("part [%d, %d) of %d×%d is over the budgets", lo, hi, n, seq)
				}
				got = append(got, hi)
				lo = hi
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("parts end at %v, want %v", got, c.want)
			}
		})
	}
}

func repeat(n, v int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestPartsMatchTheWholeBatch: running a batch in parts (budgets small
// enough to split the reference cases into many) gives the embeddings and
// token states of one whole Run.
func TestPartsMatchTheWholeBatch(t *testing.T) {
	cases := loadReference(t)
	whole := openFixture(t, fixtureModels["opset11"], engine.Options{Threads: 1})
	whole.attentionBudget, whole.tokenBudget = math.MaxInt, math.MaxInt
	split := openFixture(t, fixtureModels["opset11"], engine.Options{Threads: 1})
	split.attentionBudget, split.tokenBudget = 3*16*16, 40
	rows := make([][]int32, len(cases))
	for i, c := range cases {
		rows[i] = c.InputIDs
	}
	b := engine.NewBatch(rows)
	if n := countParts(split, b); n < 4 {
		t.Fatalf("the small budgets split %d rows into %d parts; the test needs several", b.Rows(), n)
	}
	want, err := whole.Embed(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := split.Embed(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(got, want); d > tolerance {
		t.Errorf("embeddings: max |Δ| = %g", d)
	}
	wantT, err := whole.EmbedTokens(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	gotT, err := split.EmbedTokens(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(gotT, wantT); d > tolerance {
		t.Errorf("token states: max |Δ| = %g", d)
	}
}

func countParts(e *Engine, b *engine.Batch) int {
	n := 0
	for lo := 0; lo < b.Rows(); lo = e.parts(b, lo) {
		n++
	}
	return n
}

// BenchmarkEmbedLongParts compares one Run per batch with the default
// budgets on long and short batches: tokens per second, and the peak RSS
// the batch adds (VmHWM, reset first; the budgeted case runs first so its
// peak is not hidden by the whole batch's). Run with
//
//	go test -run '^$' -bench EmbedLongParts -benchtime 3x ./pkg/engine/onnxrt
func BenchmarkEmbedLongParts(b *testing.B) {
	needORT(b)
	for _, shape := range []struct{ rows, seq int }{{32, 512}, {32, 128}, {32, 30}} {
		for _, budget := range []string{"parts", "whole"} {
			for _, threads := range []int{1, runtime.NumCPU()} {
				b.Run(fmt.Sprintf("%dx%d/%s/threads=%d", shape.rows, shape.seq, budget, threads), func(b *testing.B) {
					e := openFixture(b, fixtureModels["opset11"], engine.Options{Threads: threads})
					if budget == "whole" {
						e.attentionBudget, e.tokenBudget = math.MaxInt, math.MaxInt
					}
					rows := make([][]int32, shape.rows)
					for i := range rows {
						rows[i] = make([]int32, shape.seq)
						for j := range rows[i] {
							rows[i][j] = int32(100 + (i*7919+j*104729)%20000)
						}
						rows[i][0], rows[i][shape.seq-1] = 101, 102
					}
					batch := engine.NewBatch(rows)
					_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
					base := statusKB(b, "VmRSS")
					for b.Loop() {
						if _, err := e.Embed(context.Background(), batch); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*batch.Tokens())/b.Elapsed().Seconds(), "tokens/s")
					b.ReportMetric(float64(statusKB(b, "VmHWM")-base)/1024, "peak-MB")
				})
			}
		}
	}
}

func statusKB(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
