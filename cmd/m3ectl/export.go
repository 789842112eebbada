package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

func init() { register(newExportCmd) }

func newExportCmd() *cobra.Command {
	var (
		o         convert.ExportOptions
		normalize bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "export --model DIR --out MODEL.onnx",
		Short: "Export a Hugging Face / sentence-transformers BERT folder to ONNX, without Python",
		Long: `export reads a BERT folder — config.json and model.safetensors (fp32, fp16 or bf16)
or PyTorch's pytorch_model.bin — and writes the encoder as an ONNX graph: inputs
input_ids and attention_mask (int64 [batch_size, max_seq_len]; token_type_ids with
--token-type-ids), weights in fp32. With a pooling (the default, auto: what the
folder's modules.json and 1_Pooling say; m3e-base's mean + Normalize for a folder
without them) the graph also pools under the attention mask and L2-normalises, and
its output is embeddings [batch_size, hidden]: a sentence embedding straight out of
the graph, which is what a TensorRT engine behind Triton wants. With --pooling none
the output is last_hidden_state [batch_size, max_seq_len, hidden].

Opset 17 (LayerNormalization, parsed by TensorRT 8.6 and later) unless --opset says
otherwise; below 17 LayerNorm is written as its ReduceMean/Sub/Pow/Sqrt/Div chain.
--external-data (automatic above 2 GB) keeps the weights in MODEL.onnx.data.
The tokenizer files (vocab.txt, tokenizer.json, tokenizer_config.json) are copied
beside the output so that embed, serve and build-engine find them.`,
		Example: `  m3ectl export --model testdata/m3e-tiny/hf --out /tmp/m3e-tiny/model.onnx
  m3ectl export --model ./m3e-base --out m3e-base.onnx --pooling none --opset 13
  m3ectl export --model ./m3e-base --out big/model.onnx --external-data`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, _ := cmd.Flags().GetString("model")
			if dir == "" {
				return fmt.Errorf("export: --model DIR is required")
			}
			if cmd.Flags().Changed("normalize") {
				o.Normalize = &normalize
			}
			res, err := convert.Export(dir, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(out, "wrote %s (opset %d) from %s\n", res.Path, res.Opset, res.Weights)
			if res.ExternalData != "" {
				fmt.Fprintf(out, "weights in %s\n", res.ExternalData)
			}
			if res.Pooled {
				norm := ""
				if res.Pooling.Normalize {
					norm = " + L2 normalisation"
				}
				fmt.Fprintf(out, "output %s [batch_size, hidden]: %s pooling%s in the graph\n", res.Output, res.Pooling.Mode, norm)
			} else {
				fmt.Fprintf(out, "output %s [batch_size, max_seq_len, hidden]\n", res.Output)
			}
			for _, c := range res.Copied {
				fmt.Fprintf(out, "copied %s\n", c)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("model", "", "Hugging Face / sentence-transformers model folder")
	f.StringVar(&o.Out, "out", "", "ONNX file to write")
	f.StringVar(&o.Pooling, "pooling", "auto", "auto (from modules.json), none (last_hidden_state), mean, cls or max")
	f.BoolVar(&normalize, "normalize", true, "L2-normalise the pooled vector (default: the folder's Normalize module)")
	f.Int64Var(&o.Opset, "opset", convert.DefaultOpset, "ONNX opset (11-21; below 17 LayerNorm is decomposed)")
	f.BoolVar(&o.TokenTypeIDs, "token-type-ids", false, "add a token_type_ids input")
	f.BoolVar(&o.ExternalData, "external-data", false, "keep weights in MODEL.onnx.data")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
