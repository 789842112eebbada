package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

func init() { register(newBuildEngineCmd) }

func newBuildEngineCmd() *cobra.Command {
	var (
		req              convert.BuildRequest
		asJSON, noVerify bool
		vocab            string
		absTol, minCos   float64
	)
	cmd := &cobra.Command{
		Use:   "build-engine --onnx MODEL.onnx --engine OUT.plan --min 1x1 --opt 16x128 --max 64x512 [-- trtexec args]",
		Short: "Build a TensorRT engine with trtexec, with a shape profile for every dynamic input",
		Long: `build-engine reads the ONNX graph to find its dynamic inputs, checks the shape
profile (min ≤ opt ≤ max, every dimension ≥ 1, sequence within the model's
position table, every dynamic input covered, no unknown names), finds trtexec
(--trtexec, $TRTEXEC, PATH, /usr/src/tensorrt/bin), reads its TensorRT version
and passes only flags that version accepts. "BxS" applies to every dynamic
[batch, seq] input; "name:BxS,name:BxS" sets inputs one by one.

trtexec's output goes to OUT.plan.log behind a progress line; success needs
exit 0, "&&&& PASSED" and a non-empty engine. The engine's profile, dtypes
and TensorRT version are recorded in OUT.plan.meta.json, then the engine is
verified (deserialisation, and parity with ONNX Runtime when a vocabulary
sits next to the model). Arguments after "--" go to trtexec unchanged.

TensorRT 11 is strongly typed only: its trtexec has no --fp16/--int8. There
--fp16 writes OUT.plan.fp16.onnx (m3ectl convert --fp16: LayerNorm, Softmax and
pooling kept in fp32) and builds it with no precision flag; --int8 is refused.
--pooling mean builds from the ONNX with the pooling head, so the engine's
output is embeddings [N, dim] (what Triton serves without a Python step).`,
		Example: `  m3ectl build-engine --onnx m3e-base.onnx --engine m3e-base.plan --min 1x1 --opt 16x128 --max 64x512 --fp16
  m3ectl build-engine --onnx model.onnx --engine model.plan --min input_ids:1x1,attention_mask:1x1 \
      --opt input_ids:16x128,attention_mask:16x128 --max input_ids:64x512,attention_mask:64x512 --dry-run
  m3ectl build-engine --onnx model.onnx --engine model.plan --min 1x1 --opt 8x64 --max 32x256 -- --noTF32
  m3ectl build-engine --onnx m3e-base.onnx --engine m3e-base.plan --fp16 --pooling mean --dry-run --trt-version 10.3`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 && len(args) > 0 || dash > 0 {
				return fmt.Errorf("unexpected argument %q (trtexec arguments go after --)", args[0])
			}
			req.Extra = args
			verbose, _ := cmd.Flags().GetBool("verbose")
			stderr := cmd.ErrOrStderr()
			prog := newProgressLine(stderr, "build-engine")
			req.Progress = prog.progress(verbose)
			res, err := convert.BuildEngine(cmd.Context(), req)
			prog.done()
			if err != nil {
				return reportTrtexecFailure(stderr, err)
			}
			out := cmd.OutOrStdout()
			if res.DryRun {
				if asJSON {
					return writeJSON(out, res)
				}
				for _, n := range res.Notes {
					fmt.Fprintln(stderr, "note: "+n)
				}
				fmt.Fprintln(out, res.Shell)
				return nil
			}
			var ver *convert.VerifyResult
			var verr error
			if !noVerify {
				ver, verr = verifyAfterBuild(cmd.Context(), stderr, req, vocab, absTol, minCos, verbose)
			}
			if asJSON {
				if err := writeJSON(out, struct {
					*convert.BuildResult
					Verify *convert.VerifyResult `json:"verify,omitempty"`
				}{res, ver}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "engine:   %s (%.1f MB, TensorRT %s, %.1f s)\n", res.Engine, float64(res.Bytes)/1e6, res.TensorRT, float64(res.ElapsedMS)/1000)
				fmt.Fprintf(out, "log:      %s\nmetadata: %s\n", res.LogPath, res.MetaPath)
				for _, n := range res.Notes {
					fmt.Fprintln(out, "note:     "+n)
				}
				if ver != nil {
					printVerify(out, ver)
				}
			}
			if verr != nil {
				return reportTrtexecFailure(stderr, fmt.Errorf("engine built but verification failed: %w", verr))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.ONNX, "onnx", "", "ONNX model to build from (required)")
	f.StringVar(&req.Engine, "engine", "", "engine file to write, e.g. model.plan (required)")
	f.StringVar(&req.Min, "min", "1x1", "smallest shape: BxS for every dynamic input, or name:BxS,...")
	f.StringVar(&req.Opt, "opt", "16x128", "shape TensorRT tunes for")
	f.StringVar(&req.Max, "max", "64x512", "largest shape")
	f.BoolVar(&req.FP16, "fp16", false, "fp16: trtexec --fp16 up to TensorRT 10; on 11 (strongly typed) the ONNX is AutoCast to fp16 first, next to the engine")
	f.BoolVar(&req.INT8, "int8", false, "allow int8 kernels (no calibration: placeholder scales); refused on TensorRT 11")
	f.BoolVar(&req.StronglyTyped, "strongly-typed", false, "the ONNX is already mixed precision: trtexec --stronglyTyped (TensorRT 10; 11 always is)")
	f.StringVar(&req.Pooling, "pooling", "", "build from the ONNX with this pooling head (mean, cls, max) so the engine outputs embeddings [N, dim]")
	f.BoolVar(&req.Normalize, "normalize", true, "with --pooling: L2-normalise the embeddings")
	f.StringVar(&req.TRTVersion, "trt-version", "", "with --dry-run and no trtexec: the TensorRT version to write flags for (default: the newest, 11.1)")
	f.IntVar(&req.WorkspaceMiB, "workspace", 0, "builder workspace in MiB (0: TensorRT's default)")
	f.StringVar(&req.TimingCache, "timing-cache", "", "timing cache file to read and update")
	f.IntVar(&req.OptLevel, "opt-level", -1, "builder optimisation level 0-5, TensorRT ≥ 8.6 (-1: trtexec's default, 3)")
	f.StringVar(&req.Trtexec, "trtexec", "", "trtexec executable (default: $TRTEXEC, PATH, /usr/src/tensorrt/bin/trtexec)")
	f.BoolVar(&req.DryRun, "dry-run", false, "print the trtexec command line and exit")
	f.BoolVar(&noVerify, "no-verify", false, "skip verify-engine after the build")
	f.StringVar(&vocab, "vocab", "", "tokenizer for the parity check (default: next to the ONNX file)")
	f.Float64Var(&absTol, "tolerance", convert.DefaultAbsTol, "parity: largest |Δ| of hidden states allowed")
	f.Float64Var(&minCos, "min-cosine", convert.DefaultMinCosine, "parity: smallest cosine of pooled embeddings allowed")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("onnx")
	_ = cmd.MarkFlagRequired("engine")
	return cmd
}

// verifyAfterBuild runs verify-engine on a fresh engine: with the parity run
// when a tokenizer can be found, else deserialisation only.
func verifyAfterBuild(ctx context.Context, stderr io.Writer, req convert.BuildRequest, vocab string, absTol, minCos float64, verbose bool) (*convert.VerifyResult, error) {
	vreq := convert.VerifyRequest{Engine: req.Engine, Trtexec: req.Trtexec, ONNX: req.ONNX, Tokenizer: vocab, AbsTol: absTol, MinCosine: minCos}
	if vocab == "" {
		if _, err := convert.FindTokenizer(req.ONNX); err != nil {
			fmt.Fprintln(stderr, "note: no vocabulary next to the model; verifying deserialisation only (pass --vocab for the parity check)")
			vreq.ONNX = ""
		}
	}
	prog := newProgressLine(stderr, "verify-engine")
	vreq.Progress = prog.progress(verbose)
	defer prog.done()
	return convert.VerifyEngine(ctx, vreq)
}

// reportTrtexecFailure prints trtexec's [E] lines and FAILED banner before
// the one-line error main prints.
func reportTrtexecFailure(stderr io.Writer, err error) error {
	var te *convert.TrtexecError
	if errors.As(err, &te) {
		for _, l := range te.Lines {
			fmt.Fprintln(stderr, l)
		}
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progressLine shows "build-engine: phase (12s)" on stderr: redrawn each
// second on a terminal, one line per phase change otherwise.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	phase string
	start time.Time
	tty   bool
	stop  chan struct{}
	once  sync.Once
}

func newProgressLine(w io.Writer, label string) *progressLine {
	p := &progressLine{w: w, label: label, start: time.Now(), stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	if p.tty {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-t.C:
					p.mu.Lock()
					p.draw()
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

func (p *progressLine) draw() {
	if p.phase == "" {
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s: %s (%s)", p.label, p.phase, time.Since(p.start).Round(time.Second))
}

func (p *progressLine) progress(streamLog bool) convert.Progress {
	pr := convert.Progress{Phase: func(phase string, elapsed time.Duration) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.phase = phase
		if p.tty {
			p.draw()
		} else {
			fmt.Fprintf(p.w, "%s: %s (%s)\n", p.label, phase, elapsed.Round(time.Second))
		}
	}}
	if streamLog {
		pr.Line = func(line string) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.tty {
				fmt.Fprint(p.w, "\r\033[K")
			}
			fmt.Fprintln(p.w, line)
		}
	}
	return pr
}

func (p *progressLine) done() {
	p.once.Do(func() {
		close(p.stop)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.tty && p.phase != "" {
			fmt.Fprint(p.w, "\r\033[K")
		}
	})
}
