package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/engine/cuda"
)

// runSmall is the serving profile of issue 16: for each batch size of short
// (~17-token) sentences, the wall time of one Embed call from Go, the device
// time of one graph replay and of one eager run (CUDA events), and the
// per-stage split of the eager run, so that host time (wall - GPU) and
// launch overhead (eager - graph) read off one table.
func runSmall(work, sizes string) {
	short, m := shortSet(work)
	e, err := cuda.OpenConfig(m, smallOpts, cuda.ConfigFromEnv(engine.Options{}))
	if err != nil {
		fail(err)
	}
	defer e.Close()
	eager, err := cuda.OpenConfig(m, smallOpts, cuda.Config{NoGraphs: true})
	if err != nil {
		fail(err)
	}
	defer eager.Close()
	fmt.Println("GPU:", e.Device())
	fmt.Printf("%5s %6s %8s %8s %8s %8s %8s | %s\n", "rows", "tokens", "wall ms", "gpu ms", "eager ms", "host ms", "rows/s", "eager split (ms, summed over layers)")
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || n > len(short) {
			fail(fmt.Errorf("-small-sizes: %q", f))
		}
		rows := short[:n]
		b := engine.NewBatch(rows)
		wall := timeBatch(e, rows, 50, 700*time.Millisecond)
		gpu, err := e.GPUTime(b, 100)
		if err != nil {
			fail(err)
		}
		eg, err := eager.GPUTime(b, 50)
		if err != nil {
			fail(err)
		}
		p, err := eager.Profile(b, 10)
		if err != nil {
			fail(err)
		}
		keys := make([]string, 0, len(p))
		for k := range p {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return p[keys[i]] > p[keys[j]] })
		var sb strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&sb, " %s %.3f", k, p[k])
		}
		fmt.Printf("%5d %6d %8.3f %8.3f %8.3f %8.3f %8.0f |%s\n", n, b.Tokens(), wall, gpu, eg, wall-gpu, float64(n)/wall*1e3, sb.String())
	}
	// Back-to-back replays with no host wait between them: the GPU's own
	// rate for a stream of small batches (what overlapping batches could
	// reach at best).
	for _, n := range []int{16, 32, 64, 128} {
		b := engine.NewBatch(short[:n])
		ms, err := e.GPUTimeBackToBack(b, 200)
		if err != nil {
			fail(err)
		}
		fmt.Printf("back-to-back graph replays, %d rows: %.3f ms each = %.0f rows/s\n", n, ms, float64(n)/ms*1e3)
	}
}

// runNCUSmall launches batches of 1, 32 and 128 short sentences twice each
// without graphs, for Nsight Compute's per-kernel durations.
func runNCUSmall(work string) {
	short, m := shortSet(work)
	e, err := cuda.OpenConfig(m, smallOpts, cuda.Config{NoGraphs: true})
	if err != nil {
		fail(err)
	}
	defer e.Close()
	for _, n := range []int{1, 32, 128} {
		for i := 0; i < 2; i++ {
			if _, err := e.Embed(context.Background(), engine.NewBatch(short[:n])); err != nil {
				fail(err)
			}
		}
	}
}

// timeBatch is the median wall time of Embed on rows, over at least minReps
// runs and about budget.
func timeBatch(e *cuda.Engine, rows [][]int32, minReps int, budget time.Duration) float64 {
	b := engine.NewBatch(rows)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := e.Embed(ctx, b); err != nil {
			fail(err)
		}
	}
	var ts []float64
	start := time.Now()
	for len(ts) < minReps || (time.Since(start) < budget && len(ts) < 2000) {
		t := time.Now()
		if _, err := e.Embed(ctx, b); err != nil {
			fail(err)
		}
		ts = append(ts, float64(time.Since(t).Microseconds())/1e3)
	}
	sort.Float64s(ts)
	return ts[len(ts)/2]
}

// smallOpts sizes the small-batch profiles' engines.
var smallOpts = engine.Options{MaxBatchRows: 512, MaxBatchTokens: 64 * 512}

// shortSet reads the short sentences of speedsets.json and resolves the
// base-shaped model, both made by make_model_and_baseline.py in work.
func shortSet(work string) ([][]int32, *engine.Model) {
	var raw map[string]json.RawMessage
	readJSON(filepath.Join(work, "speedsets.json"), &raw)
	var short [][]int32
	if err := json.Unmarshal(raw["short"], &short); err != nil {
		fail(err)
	}
	m, err := engine.ResolveModel(filepath.Join(work, "m3e-base-rand"))
	if err != nil {
		fail(err)
	}
	return short, m
}
