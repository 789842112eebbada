// Command cudabench checks and times m3ectl's CUDA engine on the GPU machine,
// beside PyTorch's figures from the same run (scripts/gpu/make_model_and_baseline.py),
// and prints the comparison table of docs/gpu.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/engine/cuda"
)

type refRow struct {
	IDs       []int32   `json:"ids"`
	InputIDs  []int32   `json:"input_ids"`
	Embedding []float32 `json:"embedding"`
}

type refFile struct {
	Fixture []refRow `json:"fixture"`
	Cases   []refRow `json:"cases"`
	Mixed   []refRow `json:"mixed"`
}

func readJSON(path string, v any) {
	b, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		fail(fmt.Errorf("%s: %w", path, err))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cudabench:", err)
	os.Exit(1)
}

func ids(r refRow) []int32 {
	if r.IDs != nil {
		return r.IDs
	}
	return r.InputIDs
}

type accuracy struct {
	Model, Mode, Set    string
	Rows                int
	MinCos, MaxAbs      float64
	SingleVsBatchMaxAbs float64
	Pass                bool
}

func compare(got []float32, refs []refRow, dim int) (minCos, maxAbs float64) {
	minCos = 1
	for i, r := range refs {
		g := got[i*dim : (i+1)*dim]
		var dot, na, nb float64
		for j, x := range r.Embedding {
			y := float64(g[j])
			dot += float64(x) * y
			na += float64(x) * float64(x)
			nb += y * y
			maxAbs = math.Max(maxAbs, math.Abs(float64(x)-y))
		}
		minCos = math.Min(minCos, dot/math.Sqrt(na*nb))
	}
	return
}

func checkAccuracy(model, dir string, refs map[string][]refRow, modes []string) []accuracy {
	m, err := engine.ResolveModel(dir)
	if err != nil {
		fail(err)
	}
	var out []accuracy
	for _, mode := range modes {
		conf := cuda.Config{FP32: mode == "fp32", ExactGELU: strings.Contains(mode, "erf")}
		e, err := cuda.OpenConfig(m, engine.Options{}, conf)
		if err != nil {
			fail(fmt.Errorf("open %s %s: %w", model, mode, err))
		}
		dim := e.Info().Dim
		names := make([]string, 0, len(refs))
		for k := range refs {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, set := range names {
			rs := refs[set]
			if len(rs) == 0 {
				continue
			}
			rows := make([][]int32, len(rs))
			for i, r := range rs {
				rows[i] = ids(r)
			}
			batch, err := e.Embed(context.Background(), engine.NewBatch(rows))
			if err != nil {
				fail(err)
			}
			minCos, maxAbs := compare(batch, rs, dim)
			var sv float64
			for i, r := range rows {
				one, err := e.Embed(context.Background(), engine.NewBatch([][]int32{r}))
				if err != nil {
					fail(err)
				}
				for j := range one {
					sv = math.Max(sv, math.Abs(float64(one[j]-batch[i*dim+j])))
				}
			}
			a := accuracy{Model: model, Mode: mode, Set: set, Rows: len(rs), MinCos: minCos, MaxAbs: maxAbs, SingleVsBatchMaxAbs: sv}
			if mode == "fp32" {
				a.Pass = maxAbs <= 1e-4 && sv <= 1e-4
			} else {
				a.Pass = minCos >= 0.9999 && maxAbs <= 2e-3 && sv <= 2e-3
			}
			out = append(out, a)
		}
		e.Close()
	}
	return out
}

type speedCase struct {
	Name         string
	Rows, Tokens int
	P50ms        float64 // wall time of one Embed call (host work included)
	GPUms        float64 // device time of one run, CUDA events: PyTorch's method
	PerS         float64 // sentences/s from GPUms, compared with PyTorch's
	WallPerS     float64 // sentences/s from P50ms
	TFLOPs       float64
	TorchEager   float64 // sentences/s
	TorchCompile float64
}

// flops counts the useful (padding-free) work of a batch.
func flops(rows [][]int32, layers, h, inter int) float64 {
	var f float64
	for _, r := range rows {
		l := float64(len(r))
		f += float64(layers) * (2*l*float64(4*h*h+2*h*inter) + 4*l*l*float64(h))
	}
	return f
}

type torchCase struct {
	Rows       int     `json:"rows"`
	EagerPerS  float64 `json:"eager_per_s"`
	CompPerS   float64 `json:"compiled_per_s"`
	EagerMs    float64 `json:"eager_ms"`
	CompiledMs float64 `json:"compiled_ms"`
}

func main() {
	work := flag.String("work", "/tmp/gpuwork", "folder written by make_model_and_baseline.py")
	tiny := flag.String("tiny", "testdata/m3e-tiny", "the fixture model folder (hf/ and reference.json)")
	out := flag.String("out", os.Getenv("OUT"), "where to write cudabench.json")
	batches := flag.String("batches", "8,32,128,512", "short-sentence batch sizes (batch 1 is the case \"one\")")
	ncuOnly := flag.Bool("ncu", false, "only run long64x128 and short512 twice each without graphs (for Nsight Compute)")
	split := flag.Bool("split", false, "only time long64x128 and short512 (graphs) and print the 64x128 time split: one line per run, for kernel variants (M3ECTL_NVRTC_DEFINES)")
	small := flag.Bool("small", false, "only profile batches of short sentences (issue 16): wall, graph and eager GPU time, stage split")
	smallSizes := flag.String("small-sizes", "1,2,4,8,16,32,64,128", "batch sizes for -small")
	ncuSmall := flag.Bool("ncu-small", false, "only run batches of 1, 32 and 128 short sentences twice each without graphs (for Nsight Compute)")
	bulkModel := flag.String("bulk", "", "only profile `embed --output`'s GPU side for this model folder over -bulk-corpus (issue 16, third round)")
	bulkCorpus := flag.String("bulk-corpus", "/tmp/corpus.txt", "texts, one a line, for -bulk")
	bulkTokens := flag.Int("bulk-tokens", 0, "batch token budget for -bulk (0: pkg/bulk's default)")
	accOnly := flag.Bool("accuracy", false, "only the correctness table (fp32, fp16, fp16-erf against sentence-transformers fp32)")
	bulkRows := flag.Int("bulk-rows", 0, "batch row cap for -bulk (0: pkg/bulk's default)")
	bulkRuns := flag.String("bulk-runs", "1,2,1,2", "-bulk: engines per timed run, in order")
	bulkReplay := flag.Bool("bulk-replay", true, "-bulk: replay every batch of the last run alone, summed")
	bulkSplit := flag.Bool("bulk-split", true, "-bulk: the stage split of three batches (needs -bulk-replay)")
	bulkSplitOnly := flag.Bool("bulk-split-only", false, "with -bulk: only the graph time and stage split of three of the job's batches (no whole-job runs)")
	bulkNCU := flag.Bool("bulk-ncu", false, "with -bulk: only run two of the job's batches eagerly, for Nsight Compute")
	flag.Parse()
	if *bulkModel != "" && (*bulkNCU || *bulkSplitOnly) {
		runBulkSplit(*bulkModel, *bulkCorpus, *bulkTokens, *bulkRows, *bulkNCU)
		return
	}
	if *bulkModel != "" {
		runBulk(*bulkModel, *bulkCorpus, *bulkTokens, *bulkRows, *bulkRuns, *bulkReplay, *bulkSplit)
		return
	}
	if *small {
		runSmall(*work, *smallSizes)
		return
	}
	if *ncuSmall {
		runNCUSmall(*work)
		return
	}
	if *split {
		runSplit(*work)
		return
	}
	if *ncuOnly {
		runForNCU(*work)
		return
	}

	// Correctness.
	var tinyRef refFile
	readJSON(filepath.Join(*tiny, "reference.json"), &tinyRef)
	acc := checkAccuracy("m3e-tiny", filepath.Join(*tiny, "hf"), map[string][]refRow{"fixture30": tinyRef.Cases}, []string{"fp32", "fp16", "fp16-erf"})
	bigDir := filepath.Join(*work, "m3e-base-rand")
	var bigRef refFile
	readJSON(filepath.Join(*work, "reference.json"), &bigRef)
	acc = append(acc, checkAccuracy("m3e-base-shaped", bigDir, map[string][]refRow{"fixture30": bigRef.Fixture, "mixed": bigRef.Mixed}, []string{"fp32", "fp16", "fp16-erf"})...)
	fmt.Println("\n== correctness vs sentence-transformers fp32 ==")
	fmt.Printf("%-16s %-10s %-10s %5s %10s %10s %12s %s\n", "model", "mode", "set", "rows", "min cos", "max |Δ|", "1-vs-batch", "pass")
	for _, a := range acc {
		fmt.Printf("%-16s %-10s %-10s %5d %10.7f %10.2e %12.2e %v\n", a.Model, a.Mode, a.Set, a.Rows, a.MinCos, a.MaxAbs, a.SingleVsBatchMaxAbs, a.Pass)
	}
	if *accOnly {
		return
	}

	// Speed.
	var sets map[string]json.RawMessage
	readJSON(filepath.Join(*work, "speedsets.json"), &sets)
	get := func(k string) [][]int32 {
		var v [][]int32
		if err := json.Unmarshal(sets[k], &v); err != nil {
			fail(err)
		}
		return v
	}
	var one []int32
	_ = json.Unmarshal(sets["one"], &one)
	var torch struct {
		Device string               `json:"device"`
		Cases  map[string]torchCase `json:"cases"`
	}
	readJSON(filepath.Join(*work, "torch_bench.json"), &torch)

	free0, total, _ := cuda.DeviceMemory(0)
	m, err := engine.ResolveModel(bigDir)
	if err != nil {
		fail(err)
	}
	results := map[string]any{"accuracy": acc}
	for _, variant := range []struct {
		name string
		conf cuda.Config
	}{{"fp16", cuda.Config{}}, {"fp16-erf", cuda.Config{ExactGELU: true}}, {"fp16-nographs", cuda.Config{NoGraphs: true}}, {"fp16-notune", cuda.Config{NoTune: true}}} {
		e, err := cuda.OpenConfig(m, engine.Options{MaxBatchRows: 512, MaxBatchTokens: 64 * 512}, variant.conf)
		if err != nil {
			fail(err)
		}
		if variant.name == "fp16" {
			fmt.Println("\nGPU:", e.Device())
		}
		type named struct {
			name string
			rows [][]int32
		}
		cases := []named{{"one", [][]int32{one}}}
		for _, b := range strings.Split(*batches, ",") {
			var n int
			fmt.Sscan(b, &n)
			cases = append(cases, named{"short" + b, get("short")[:n]})
		}
		cases = append(cases, named{"long64x128", get("long")}, named{"mixed64", get("mixed")})
		var sc []speedCase
		for _, c := range cases {
			ms := timeBatch(e, c.rows, 20, 1500*time.Millisecond)
			gms, err := e.GPUTime(engine.NewBatch(c.rows), 50)
			if err != nil {
				fail(err)
			}
			toks := 0
			for _, r := range c.rows {
				toks += len(r)
			}
			s := speedCase{Name: c.name, Rows: len(c.rows), Tokens: toks, P50ms: ms, GPUms: gms,
				PerS: float64(len(c.rows)) / gms * 1e3, WallPerS: float64(len(c.rows)) / ms * 1e3,
				TFLOPs: flops(c.rows, 12, 768, 3072) / (gms / 1e3) / 1e12}
			if tc, ok := torch.Cases[c.name]; ok {
				s.TorchEager, s.TorchCompile = tc.EagerPerS, tc.CompPerS
			}
			sc = append(sc, s)
		}
		free1, _, _ := cuda.DeviceMemory(0)
		fmt.Printf("\n== speed: m3ectl cuda %s vs PyTorch fp16 (%s), same sentences ==\n", variant.name, torch.Device)
		fmt.Println("(gpu ms: CUDA events around one run, input and result copies included, as PyTorch is timed; wall ms: one Embed call from Go; sent/s and the ratios from gpu ms, x comp wall from wall ms)")
		fmt.Printf("%-11s %4s %6s %8s %8s %9s %7s %6s %11s %11s %7s %7s %11s\n", "case", "rows", "tokens", "gpu ms", "wall ms", "sent/s", "TFLOP/s", "%peak", "torch eager", "torch comp", "x eager", "x comp", "x comp wall")
		for _, s := range sc {
			xe, xc, xw := s.PerS/s.TorchEager, s.PerS/s.TorchCompile, s.WallPerS/s.TorchCompile
			fmt.Printf("%-11s %4d %6d %8.3f %8.3f %9.0f %7.1f %5.1f%% %11.0f %11.0f %7.2f %7.2f %11.2f\n", s.Name, s.Rows, s.Tokens, s.GPUms, s.P50ms, s.PerS, s.TFLOPs, s.TFLOPs/790*100, s.TorchEager, s.TorchCompile, xe, xc, xw)
		}
		fmt.Printf("GPU memory used by the engine: %.0f MiB (weights %.0f MiB) of %.0f MiB\n", float64(free0-free1)/(1<<20), float64(e.WeightBytes())/(1<<20), float64(total)/(1<<20))
		results["speed_"+variant.name] = sc
		results["mem_used_mib_"+variant.name] = float64(free0-free1) / (1 << 20)
		if variant.name == "fp16" {
			for _, c := range []named{{"long64x128", get("long")}, {"short512", get("short")}, {"one", [][]int32{one}}} {
				p, err := e.Profile(engine.NewBatch(c.rows), 10)
				if err != nil {
					fail(err)
				}
				var total float64
				keys := make([]string, 0, len(p))
				for k, v := range p {
					total += v
					keys = append(keys, k)
				}
				sort.Slice(keys, func(i, j int) bool { return p[keys[i]] > p[keys[j]] })
				fmt.Printf("\n-- time split, %s (no graph, events per stage; total %.3f ms) --\n", c.name, total)
				for _, k := range keys {
					fmt.Printf("  %-14s %8.3f ms %5.1f%%\n", k, p[k], p[k]/total*100)
				}
				results["profile_"+c.name] = p
			}
		}
		e.Close()
	}
	if *out != "" {
		b, _ := json.MarshalIndent(results, "", " ")
		_ = os.WriteFile(filepath.Join(*out, "cudabench.json"), b, 0o644)
	}
	for _, a := range acc {
		if !a.Pass {
			fmt.Println("\nACCURACY CHECK FAILED")
			os.Exit(2)
		}
	}
}

// runSplit prints one line: p50 of long64x128 and short512 with graphs, and
// the 64x128 per-stage split, so kernel variants compare within one call.
func runSplit(work string) {
	var raw map[string]json.RawMessage
	readJSON(filepath.Join(work, "speedsets.json"), &raw)
	get := func(k string) [][]int32 {
		var v [][]int32
		if err := json.Unmarshal(raw[k], &v); err != nil {
			fail(err)
		}
		return v
	}
	m, err := engine.ResolveModel(filepath.Join(work, "m3e-base-rand"))
	if err != nil {
		fail(err)
	}
	e, err := cuda.OpenConfig(m, engine.Options{MaxBatchRows: 512, MaxBatchTokens: 64 * 512}, cuda.ConfigFromEnv(engine.Options{}))
	if err != nil {
		fail(err)
	}
	defer e.Close()
	long, short := get("long"), get("short")[:512]
	lms := timeBatch(e, long, 20, 1500*time.Millisecond)
	sms := timeBatch(e, short, 20, 1500*time.Millisecond)
	p, err := e.Profile(engine.NewBatch(long), 10)
	if err != nil {
		fail(err)
	}
	var ref refFile
	readJSON(filepath.Join(work, "reference.json"), &ref)
	for _, a := range checkAccuracy("m3e-base-shaped", filepath.Join(work, "m3e-base-rand"), map[string][]refRow{"fixture30": ref.Fixture, "mixed": ref.Mixed}, []string{"fp16"}) {
		fmt.Printf("  accuracy %-10s %-9s min cos %.7f max |Δ| %.2e 1-vs-batch %.2e pass %v\n", a.Mode, a.Set, a.MinCos, a.MaxAbs, a.SingleVsBatchMaxAbs, a.Pass)
	}
	// Two engines (own streams) each embedding half of the 64 x 128 batch at
	// once: what overlapping the halves inside one engine could gain.
	e2, err := cuda.OpenConfig(m, engine.Options{MaxBatchRows: 512, MaxBatchTokens: 64 * 512}, cuda.ConfigFromEnv(engine.Options{}))
	if err != nil {
		fail(err)
	}
	halves := [2]*engine.Batch{engine.NewBatch(long[:32]), engine.NewBatch(long[32:])}
	engines := [2]*cuda.Engine{e, e2}
	pair := func(n int) float64 {
		t0 := time.Now()
		done := make(chan struct{}, 2)
		for i := range engines {
			go func(i int) {
				for r := 0; r < n; r++ {
					if _, err := engines[i].Embed(context.Background(), halves[i]); err != nil {
						fail(err)
					}
				}
				done <- struct{}{}
			}(i)
		}
		<-done
		<-done
		return float64(time.Since(t0).Microseconds()) / 1e3 / float64(n)
	}
	pair(20)
	fmt.Printf("split two engines x 32x128 at once: %.3f ms per 64 rows (one engine 64x128: %.3f ms wall)\n", pair(300), lms)
	e2.Close()
	var one []int32
	_ = json.Unmarshal(raw["one"], &one)
	oms := timeBatch(e, [][]int32{one}, 50, time.Second)
	fmt.Printf("split long64x128 %.3f ms (%.0f/s)  short512 %.3f ms (%.0f/s)  one %.3f ms | 64x128 split: attention %.3f  add_ln %.3f  gemms %.3f (qkv %.3f out %.3f ffn1 %.3f ffn2 %.3f)\n",
		lms, 64/lms*1e3, sms, 512/sms*1e3, oms, p["attention"], p["add_ln"],
		p["qkv_gemm"]+p["attn_out_gemm"]+p["ffn1_gemm"]+p["ffn2_gemm"], p["qkv_gemm"], p["attn_out_gemm"], p["ffn1_gemm"], p["ffn2_gemm"])
}

// runForNCU launches a few plain (ungraphed) batches so that ncu can profile
// individual kernels.
func runForNCU(work string) {
	var sets map[string][][]int32
	b, err := os.ReadFile(filepath.Join(work, "speedsets.json"))
	if err != nil {
		fail(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		fail(err)
	}
	sets = map[string][][]int32{}
	for _, k := range []string{"long", "short"} {
		var v [][]int32
		if err := json.Unmarshal(raw[k], &v); err != nil {
			fail(err)
		}
		sets[k] = v
	}
	m, err := engine.ResolveModel(filepath.Join(work, "m3e-base-rand"))
	if err != nil {
		fail(err)
	}
	e, err := cuda.OpenConfig(m, engine.Options{}, cuda.Config{NoGraphs: true})
	if err != nil {
		fail(err)
	}
	defer e.Close()
	for _, k := range []string{"long", "short"} {
		for i := 0; i < 2; i++ {
			if _, err := e.Embed(context.Background(), engine.NewBatch(sets[k])); err != nil {
				fail(err)
			}
		}
	}
}
