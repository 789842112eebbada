package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

func init() { register(newConvertCmd) }

func newConvertCmd() *cobra.Command {
	var (
		o      convert.ConvertOptions
		in     string
		out    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "convert --onnx IN.onnx --out OUT.onnx [--pooling mean --normalize] [--fp16]",
		Short: "Rewrite an ONNX encoder: add the pooling head, or AutoCast it to fp16 for TensorRT 11",
		Long: `convert rewrites a BERT-like ONNX encoder (m3ectl's own export, the article's
torch.onnx.export graph at opset 11, the dynamo exporter's graph with external data).

--pooling mean|cls|max appends the sentence-transformers pooling head to the
[batch, seq, hidden] output (masked mean, the CLS token, masked max), --normalize
L2-normalises it, and embeddings [batch, hidden] becomes the graph's only output.

--fp16 is the AutoCast TensorRT 11's strongly typed builder needs: weights stored
and computed in fp16, LayerNorm (LayerNormalization or its decomposed chain),
Softmax and the pooling head kept in fp32, Casts at the boundaries; inputs and
outputs keep their types (int64 ids in, float32 out).

OUT must differ from IN; nothing is written on failure.`,
		Example: `  m3ectl convert --onnx testdata/m3e-tiny/model.onnx --out /tmp/pooled.onnx --pooling mean --normalize
  m3ectl convert --onnx m3e-base.onnx --out m3e-base.fp16.onnx --fp16
  m3ectl convert --onnx testdata/m3e-tiny/dynamo/model.onnx --out /tmp/d/model.onnx --pooling mean --normalize --fp16`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if in == "" {
				return fmt.Errorf("convert: --onnx IN.onnx is required")
			}
			res, err := convert.Convert(in, out, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(w, "wrote %s\n", res.Path)
			if res.ExternalData != "" {
				fmt.Fprintf(w, "weights in %s\n", res.ExternalData)
			}
			if res.FP16 != nil {
				fmt.Fprintf(w, "fp16: %d nodes in fp16, %d kept in fp32 (%s), %d casts, %d weights in fp16",
					res.FP16.FP16Nodes, res.FP16.FP32Nodes, strings.Join(res.FP16.KeptFP32Ops, ", "), res.FP16.Casts, res.FP16.FP16Weights)
				if res.FP16.Clamped > 0 {
					fmt.Fprintf(w, " (%d clamped to ±65504)", res.FP16.Clamped)
				}
				fmt.Fprintln(w)
			}
			for _, v := range res.Report.Outputs {
				fmt.Fprintf(w, "output %s %s %s\n", v.Name, v.DType, convert.FormatShape(v.Shape))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in, "onnx", "", "ONNX encoder to read")
	f.StringVar(&out, "out", "", "ONNX file to write (not the input)")
	f.StringVar(&o.Pooling, "pooling", "none", "none, mean, cls or max")
	f.BoolVar(&o.Normalize, "normalize", false, "L2-normalise the pooled vector")
	f.StringVar(&o.Output, "output", "", "the [batch, seq, hidden] output to pool (default: the first such output)")
	f.BoolVar(&o.FP16, "fp16", false, "AutoCast to fp16 (TensorRT 11 strongly typed)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
