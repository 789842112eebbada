package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

func init() { register(newInspectCmd) }

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL.onnx|DIR",
		Short: "Describe an ONNX model: inputs, outputs, ops, parameters, BERT architecture, trtexec profile",
		Long: `inspect reads an ONNX model (also one whose weights live in external-data files,
which are checked but not loaded) and prints its opset and IR version, producer,
inputs and outputs with every dimension (symbolic names kept), the op histogram,
the parameter count and bytes, the external-data files, the detected BERT
architecture (layers, hidden size, heads, intermediate size, vocabulary, max
positions), whether the graph pools itself (an embeddings [batch, hidden]
output, which embed, serve and verify-engine then take as is) and the trtexec
shape profile build-engine would suggest.
A model folder (Hugging Face layout) is inspected through its model.onnx or
onnx/model.onnx.`,
		Example: `  m3ectl inspect testdata/m3e-tiny/model.onnx
  m3ectl inspect --json testdata/m3e-tiny/dynamo/model.onnx | jq .architecture
  m3ectl inspect ./m3e-base`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := onnxPath(args[0])
			if err != nil {
				return err
			}
			r, err := convert.Inspect(path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return r.WriteText(out)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// onnxPath turns a model folder into its ONNX graph; files are taken as given
// whatever their extension.
func onnxPath(arg string) (string, error) {
	st, err := os.Stat(arg)
	if err != nil || !st.IsDir() {
		return arg, nil // Inspect reports a missing file itself
	}
	m, err := engine.ResolveModel(arg)
	if err != nil {
		return "", err
	}
	if m.ONNX == "" {
		return "", fmt.Errorf("model %s: the folder has no model.onnx or onnx/model.onnx to inspect", arg)
	}
	return m.ONNX, nil
}
