package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/triton"
)

func init() { register(newRepoCmd) }

func newRepoCmd() *cobra.Command {
	var (
		o      triton.RepoOptions
		gpus   []int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "repo --name NAME --out DIR --engine OUT.plan --vocab vocab.txt",
		Short: "Write a Triton model repository for the engine (python or ensemble layout) and validate it",
		Long: `repo writes a Triton Inference Server model repository.

The python layout (the article's) is one Python-backend model: config.pbtxt
(text TYPE_STRING in, embeddings TYPE_FP32 [width] out, instance_group,
dynamic_batching, model_warmup) and a version folder with the engine
(model.plan), vocab.txt and a model.py that tokenises, runs TensorRT through
its named-tensor API with buffers allocated once, mean-pools under the mask,
normalises and answers each request once.

The ensemble layout is NAME_tokenizer (python) → NAME_engine (tensorrt_plan,
or onnxruntime_onnx without --engine) → NAME_pooling (python), wired by the
ensemble NAME. With --onnx the ONNX file also goes into NAME's version folder,
so "m3ectl serve --model-repository DIR" serves the same repository on a CPU.

What was written is validated: every config.pbtxt parses back as written and
agrees with the model (names, width, max_batch_size within the engine's
profile as recorded by build-engine), and every model.py compiles.`,
		Example: `  m3ectl repo --name m3e-base-trt --out model_repository --engine m3e-base.plan --vocab vocab.txt
  m3ectl repo --name m3e-base-trt --out model_repository --engine m3e-base.plan --onnx m3e-base.onnx \
      --vocab vocab.txt --max-batch-size 32 --instances 2 --kind gpu --gpus 0 --max-queue-delay-us 2000
  m3ectl repo --name m3e-ens --out model_repository --onnx model.onnx --vocab vocab.txt --layout ensemble --kind cpu`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, g := range gpus {
				o.GPUs = append(o.GPUs, int32(g))
			}
			if o.Kind == "cpu" {
				o.GPUs = nil
			}
			res, err := triton.WriteRepository(o)
			out := cmd.OutOrStdout()
			if res != nil && (err == nil || asJSON) {
				if asJSON {
					if jerr := writeJSON(out, res); jerr != nil {
						return jerr
					}
				} else {
					fmt.Fprintf(out, "repository: %s (layout %s, models %v, width %d, max length %d)\n", res.Root, o.Layout, res.Models, res.Dim, res.MaxLength)
					for _, f := range res.Files {
						fmt.Fprintln(out, "  wrote "+f)
					}
					for _, c := range res.Checks {
						fmt.Fprintln(out, "  ok    "+c)
					}
					for _, n := range res.Notes {
						fmt.Fprintln(out, "  note  "+n)
					}
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "model name clients call (required)")
	f.StringVar(&o.Out, "out", "model_repository", "repository folder")
	f.StringVar(&o.Engine, "engine", "", "TensorRT engine (.plan) from build-engine")
	f.StringVar(&o.ONNX, "onnx", "", "ONNX model: copied into the version folder (CPU serving; onnxruntime_onnx in the ensemble)")
	f.StringVar(&o.Vocab, "vocab", "", "vocab.txt of the model (required)")
	f.IntVar(&o.MaxBatchSize, "max-batch-size", 32, "max_batch_size (at most the engine's max profile batch)")
	f.IntVar(&o.Instances, "instances", 2, "instance_group count")
	f.StringVar(&o.Kind, "kind", "gpu", "instance kind: gpu or cpu")
	f.IntSliceVar(&gpus, "gpus", []int{0}, "GPU ids for the instance group")
	f.IntVar(&o.MaxQueueDelayUs, "max-queue-delay-us", 2000, "dynamic_batching max_queue_delay_microseconds")
	f.StringVar(&o.Layout, "layout", triton.LayoutPython, "python (one Python-backend model) or ensemble")
	f.IntVar(&o.Version, "version", 1, "model version folder")
	f.IntVar(&o.Dim, "dim", 0, "embedding width when neither --onnx nor the engine's metadata tells it")
	f.IntVar(&o.MaxLength, "max-length", 0, "tokens per text (default: 512, capped by the engine's profile)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("vocab")
	return cmd
}
