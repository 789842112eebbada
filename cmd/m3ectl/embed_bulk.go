package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/m3ectl/m3ectl/pkg/bulk"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

// processStart is when this process began (as near as Go lets us see it),
// for the cold-start figure embed -v prints.
var processStart = time.Now()

// bulkFlags are embed's flags for writing a corpus to a file.
type bulkFlags struct {
	output, dtype, input, textColumn, device string
	includeText                              bool
	instances, batchTokens                   int
	quiet                                    bool
}

func addBulkFlags(f *pflag.FlagSet, bf *bulkFlags) {
	f.StringVarP(&bf.output, "output", "o", "", "write embeddings to `FILE` by its extension: .npy (matrix), .parquet (index, embedding) or .jsonl")
	f.StringVar(&bf.dtype, "dtype", "float32", "element type of .npy output: float32 or float16")
	f.StringVar(&bf.input, "input", "", "read texts from `FILE`: .parquet (column --text-column), .jsonl, or one text per line")
	f.StringVar(&bf.textColumn, "text-column", "text", "Parquet column holding the texts")
	f.BoolVar(&bf.includeText, "include-text", false, "store each text beside its embedding (.parquet output)")
	f.IntVar(&bf.instances, "instances", 0, "engines per device with --output (0: 2 per GPU, 1 on CPU)")
	f.IntVar(&bf.batchTokens, "batch-tokens", 0, "tokens per engine call with --output (0: 16384)")
	f.BoolVar(&bf.quiet, "quiet", false, "no progress output")
}

// parseDevices reads --device: one ordinal or a comma-separated list.
func parseDevices(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--device %q: want GPU ordinals such as 0 or 0,1", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// runBulk is embed --output: the whole input through bulk.Run on every
// engine asked for.
func runBulk(cmd *cobra.Command, m *engine.Model, cfg engine.EmbedderConfig, devices []int, bf *bulkFlags, args []string, jsonl string) error {
	var f16 bool
	switch bf.dtype {
	case "float32":
	case "float16":
		f16 = true
	default:
		return fmt.Errorf("--dtype %q: want float32 or float16", bf.dtype)
	}
	if cfg.Kind != "cuda" && len(devices) > 1 {
		return fmt.Errorf("--device %s: several devices need --engine cuda", bf.device)
	}
	// With --engine cuda every engine opens at once (each maps and converts
	// the weights and makes its stream; one after the other they were most
	// of a short job's start); otherwise the first decides what the others
	// are.
	per := bf.instances
	if per <= 0 {
		per = 1
		if cfg.Kind == "cuda" {
			per = 2 // a second stream per GPU overlaps one batch's host work with the other's compute
		}
	}
	// The CUDA engines size their buffers for the largest batch the
	// pipeline cuts and choose that shape's GEMMs while the weights load,
	// instead of growing (and re-capturing) as longer batches arrive.
	if cfg.Kind == "cuda" && cfg.Options.MaxBatchTokens == 0 {
		bt := bf.batchTokens
		if bt <= 0 {
			bt = bulk.DefaultBatchTokens
		}
		cfg.Options.MaxBatchTokens, cfg.Options.MaxBatchRows = bt, min(bulk.DefaultBatchRows, bt)
	}
	type opened struct {
		e   engine.Engine
		err error
		dev int
	}
	var slots []chan opened
	openRest := func() {
		for i, d := range devices {
			for k := 0; k < per; k++ {
				if i == 0 && k == 0 {
					continue
				}
				ch := make(chan opened, 1)
				slots = append(slots, ch)
				go func(d int) {
					o := cfg.Options
					o.Device = d
					e, err := engine.Open(cfg.Kind, m, o)
					ch <- opened{e, err, d}
				}(d)
			}
		}
	}
	if cfg.Kind == "cuda" {
		openRest()
	}
	var engines []engine.Engine
	defer func() {
		t := time.Now()
		for _, e := range engines {
			e.Close()
		}
		slog.Debug("engines closed", "took", time.Since(t).Round(time.Millisecond), "since_start", time.Since(processStart).Round(time.Millisecond),
			"rss", procStatus("VmRSS"), "peak_rss", procStatus("VmHWM"), "go_heap_mb", goHeapMB())
	}()
	collect := func() error {
		var first error
		for _, ch := range slots {
			r := <-ch
			if r.err != nil {
				if first == nil {
					first = fmt.Errorf("device %d: %w", r.dev, r.err)
				}
				continue
			}
			engines = append(engines, r.e)
		}
		slots = nil
		return first
	}
	emb, err := engine.NewEmbedder(m, cfg)
	if err != nil {
		collect()
		return err
	}
	engines = append(engines, emb.Engine)
	if cfg.Kind != "cuda" && per > 1 {
		openRest()
	}
	if err := collect(); err != nil {
		return err
	}
	slog.Debug("engines ready", "engines", len(engines), "since_start", time.Since(processStart).Round(time.Millisecond))
	// What the process holds when it exits, the kernel frees inside the
	// job's time (24 x 1024 on the lent H200: 1.55-1.63 GB left, 165-190 ms
	// from engines closed to exit; 0.64 GB, 112-136 ms). The host copy of
	// the weights (619 MB) is garbage once they are on the GPU, earlier
	// chunks once the last is read: they go back to the OS then, while the
	// GPU computes the last chunk. (Released as soon as the engines were
	// ready too, it held the first batch back 24-42 ms: the scavenger and
	// the tokeniser's allocations.) M3ECTL_BULK_RELEASE=0 keeps it all.
	var release func()
	if os.Getenv("M3ECTL_BULK_RELEASE") != "0" {
		release = func() { go debug.FreeOSMemory() }
	}

	var src bulk.Source
	switch {
	case len(args) > 0:
		src = &bulk.SliceSource{Texts: args}
	case bf.input != "":
		s, closeIn, err := bulk.OpenSource(bf.input, bulk.InputFormat(bf.input), bf.textColumn)
		if err != nil {
			return fmt.Errorf("--input: %w", err)
		}
		defer closeIn()
		src = s
	default:
		in, name, closeIn, err := openTexts(cmd.InOrStdin(), jsonl)
		if err != nil {
			return err
		}
		defer closeIn()
		var total int64
		if f, ok := in.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				total = st.Size()
			}
		}
		src = bulk.NewLineSource(in, name, jsonl != "", total)
	}
	sink, err := bulk.CreateSink(bf.output, emb.Engine.Info().Dim, bulk.SinkOptions{Float16: f16, IncludeText: bf.includeText})
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	terminal := false
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	prog := bulk.NewProgress(stderr, terminal)
	o := bulk.Options{BatchTokens: bf.batchTokens, AfterRead: release}
	if !bf.quiet {
		o.Progress = prog.Update
	}
	runStart := time.Now()
	st, err := bulk.Run(cmd.Context(), src, sink, emb.Tokenizer, engines, o)
	if err != nil {
		return err
	}
	if !bf.quiet {
		prog.Done(st)
	}
	slog.Debug("embed done", "texts", st.Texts, "tokens", st.Tokens, "batches", st.Batches,
		"since_start", time.Since(processStart).Round(time.Millisecond),
		"first_out_since_start", (runStart.Sub(processStart) + st.FirstOut).Round(time.Millisecond),
		"run", st.Elapsed.Round(time.Millisecond), "first_batch", st.FirstBatch.Round(time.Millisecond),
		"last_result", st.LastResult.Round(time.Millisecond), "starved", st.Starved.Round(time.Millisecond), "pipelined_engines", st.Pipelined)
	return nil
}

// procStatus reads one field of /proc/self/status ("" where there is
// none): the process's memory at the end of a job, which the kernel frees
// after it (its exit is part of the job's time).
func procStatus(field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

// goHeapMB is the Go heap's memory still held from the OS, in MB (of the
// RSS above; the rest is the CUDA libraries' and driver's).
func goHeapMB() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return (ms.HeapSys - ms.HeapReleased) >> 20
}
