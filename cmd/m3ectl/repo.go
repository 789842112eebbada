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
		Short: "Write a Triton model repository (bls, ensemble or python layout) and validate it as Triton would",
		Long: `repo writes a Triton Inference Server model repository for a pooled encoder
(an ONNX graph or TensorRT engine whose output is embeddings [N, dim]: m3ectl
export, or m3ectl convert --pooling mean --normalize, then build-engine).

--layout bls (default) loads in a stock nvcr.io/nvidia/tritonserver:26.xx-py3
image with nothing installed: NAME is a Python-backend model using numpy and
the standard library only (text TYPE_STRING [-1] in, embeddings TYPE_FP32
[dim] out, dynamic batching) that tokenises every request of a batch with a
pure-Python BERT tokenizer (ids identical to transformers.BertTokenizer),
pads once, sends one BLS request to NAME-encoder and splits the result back;
NAME-encoder is the engine (tensorrt_plan, dtypes and dims as build-engine
recorded them, warmed up at the profile's opt shape) or, with --encoder onnx,
the graph (onnxruntime_onnx, so the same layout runs on a CPU Triton).

--layout ensemble wires NAME-tokenizer → NAME-encoder as the ensemble NAME; the
tokenizer pads each batch to a bucketed length so the encoder's batcher can
merge requests. --layout python is the article's single model.py running
TensorRT itself; it needs a custom image (pip install -r requirements.txt,
which pins the engine's TensorRT).

Before writing, every config is checked with Triton core's load-time rules
(names, dtypes, dims, max_batch_size, ensemble mappings, the BLS request
against the encoder's config); after writing, every config.pbtxt is read back
and every model.py compiled. --triton-image refuses an image whose TensorRT
differs from the engine's. "m3ectl serve --model-repository DIR" serves all
three layouts (the encoder through ONNX Runtime, from --onnx).`,
		Example: `  m3ectl repo --name m3e-base-trt --out model_repository --engine m3e-base.plan --onnx m3e-base.onnx \
      --vocab vocab.txt --max-batch-size 32 --instances 2 --kind gpu --max-queue-delay-us 2000 \
      --triton-image nvcr.io/nvidia/tritonserver:26.06-py3
  m3ectl repo --name m3e-cpu --out model_repository --encoder onnx --onnx m3e-base.onnx --vocab vocab.txt --kind cpu
  m3ectl repo --name m3e-ens --out model_repository --engine m3e-base.plan --vocab vocab.txt --layout ensemble
  m3ectl repo --name m3e-base-trt --out model_repository --engine hand-built.plan --input-dtype int32 --vocab vocab.txt`,
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
					fmt.Fprintf(out, "repository: %s (layout %s, models %v, width %d, max length %d)\n", res.Root, res.Layout, res.Models, res.Dim, res.MaxLength)
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
	f.StringVar(&o.ONNX, "onnx", "", "pooled ONNX graph: the onnxruntime_onnx encoder (--encoder onnx), else copied beside the engine for m3ectl serve")
	f.StringVar(&o.Encoder, "encoder", "", "encoder model: tensorrt (default with --engine) or onnx")
	f.StringVar(&o.InputDType, "input-dtype", "", "engine input dtype when the engine has no build metadata: int32 (TensorRT 8.x) or int64 (10 and later)")
	f.StringVar(&o.TritonImage, "triton-image", "", "the Triton image the repository is for (e.g. nvcr.io/nvidia/tritonserver:26.06-py3): refused if its TensorRT differs from the engine's")
	f.BoolVar(&o.Force, "force", false, "write even when --triton-image does not match the engine's TensorRT")
	f.StringVar(&o.Vocab, "vocab", "", "vocab.txt of the model (required)")
	f.IntVar(&o.MaxBatchSize, "max-batch-size", 32, "max_batch_size (at most the engine's max profile batch)")
	f.IntVar(&o.Instances, "instances", 2, "instance_group count")
	f.StringVar(&o.Kind, "kind", "gpu", "encoder instance kind: gpu or cpu (cpu needs --encoder onnx)")
	f.IntSliceVar(&gpus, "gpus", []int{0}, "GPU ids for the instance group")
	f.IntVar(&o.MaxQueueDelayUs, "max-queue-delay-us", 2000, "dynamic_batching max_queue_delay_microseconds")
	f.StringVar(&o.Layout, "layout", triton.LayoutBLS, "bls (stock image: numpy tokenizer + BLS to the encoder), ensemble, or python (the article's model.py; custom image)")
	f.IntVar(&o.Version, "version", 1, "model version folder")
	f.IntVar(&o.Dim, "dim", 0, "embedding width when neither --onnx nor the engine's metadata tells it")
	f.IntVar(&o.MaxLength, "max-length", 0, "tokens per text (default: the model's window, capped by the engine's profile)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("vocab")
	return cmd
}
