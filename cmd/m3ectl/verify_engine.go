package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

func init() { register(newVerifyEngineCmd) }

func newVerifyEngineCmd() *cobra.Command {
	var (
		req    convert.VerifyRequest
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "verify-engine OUT.plan [--onnx MODEL.onnx]",
		Short: "Prove a TensorRT engine deserialises here, and with --onnx that it matches ONNX Runtime",
		Long: `verify-engine loads the engine with trtexec --loadEngine (no timing run) and
reports the TensorRT version and the bindings trtexec prints. A corrupt engine,
or one built by another TensorRT version, fails with trtexec's reason.

With --onnx it also tokenises sample sentences, writes them as trtexec input
files (raw little-endian, in the dtype the engine takes: int32 for TensorRT
8.x, int64 for 10.x and 11.x), runs the engine (--loadInputs/--exportOutput), runs
the same inputs through ONNX Runtime on the CPU, and reports the largest |Δ| of
the hidden states and the smallest cosine of the mean-pooled embeddings. An
engine whose output is already pooled (embeddings [N, dim], from m3ectl export or
build-engine --pooling) is compared on those embeddings, row by row, and no
pooling of verify-engine's own is applied. It fails when either figure is
outside the tolerance (defaults fit an fp16 engine).`,
		Example: `  m3ectl verify-engine m3e-base.plan
  m3ectl verify-engine m3e-base.plan --onnx m3e-base.onnx --vocab vocab.txt
  m3ectl verify-engine m3e-base.plan --onnx m3e-base.onnx --tolerance 1e-3 --json`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Engine = args[0]
			verbose, _ := cmd.Flags().GetBool("verbose")
			stderr := cmd.ErrOrStderr()
			prog := newProgressLine(stderr, "verify-engine")
			req.Progress = prog.progress(verbose)
			res, err := convert.VerifyEngine(cmd.Context(), req)
			prog.done()
			if res != nil {
				out := cmd.OutOrStdout()
				if asJSON {
					if jerr := writeJSON(out, res); jerr != nil {
						return jerr
					}
				} else {
					printVerify(out, res)
				}
			}
			if err != nil {
				return reportTrtexecFailure(stderr, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.ONNX, "onnx", "", "ONNX model to compare against (adds the parity run)")
	f.StringVar(&req.Tokenizer, "vocab", "", "vocab.txt / tokenizer.json for the parity run (default: next to the ONNX file)")
	f.StringVar(&req.Trtexec, "trtexec", "", "trtexec executable (default: $TRTEXEC, PATH, /usr/src/tensorrt/bin/trtexec)")
	f.Float64Var(&req.AbsTol, "tolerance", convert.DefaultAbsTol, "largest |Δ| of hidden states allowed")
	f.Float64Var(&req.MinCosine, "min-cosine", convert.DefaultMinCosine, "smallest cosine of pooled embeddings allowed")
	f.StringVar(&req.ORTLib, "ort-lib", "", "ONNX Runtime library (default: the lookup serve uses: $ONNXRUNTIME_LIB, $XDG_DATA_HOME/m3ectl/onnxruntime, third_party/onnxruntime, system paths)")
	f.StringSliceVar(&req.Sentences, "sentence", nil, "sample sentence for the parity run (repeatable; default: a built-in set)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func printVerify(w io.Writer, r *convert.VerifyResult) {
	fmt.Fprintf(w, "verify:   %s deserialises on TensorRT %s\n", r.Engine, r.TensorRT)
	for _, b := range r.Bindings {
		kind := "output"
		if b.Input {
			kind = "input "
		}
		fmt.Fprintf(w, "  %s %s %s\n", kind, b.Name, b.Dims)
	}
	if m := r.Meta; m != nil {
		var ins []string
		for _, in := range m.Inputs {
			ins = append(ins, fmt.Sprintf("%s %s %s..%s", in.Name, in.DType, convert.FormatDims(in.Min), convert.FormatDims(in.Max)))
		}
		fmt.Fprintf(w, "  built:  TensorRT %s, %s; %s\n", m.TensorRT, strings.Join(m.Precision, "+"), strings.Join(ins, "; "))
	}
	if p := r.Parity; p != nil {
		verdict := "PASS"
		if !p.Passed {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "parity:   %s  max |Δ| %.3g (≤ %.3g), min cosine %.6f (≥ %.6f); %d sentences, batch %dx%d, %s inputs, output %s\n",
			verdict, p.MaxAbsDiff, p.AbsTol, p.MinCosine, p.CosTol, p.Sentences, p.Batch, p.Seq, p.InputDType, p.Output)
	}
}
