package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/engine"
	_ "github.com/m3ectl/m3ectl/pkg/engine/onnxrt" // the cpu engine; harmless beside backends.go's imports
)

func init() { register(newEmbedCmd) }

func newEmbedCmd() *cobra.Command {
	var (
		model, vocab, jsonl, kind string
		cfg                       engine.EmbedderConfig
		asJSON                    bool
		bf                        bulkFlags
	)
	cmd := &cobra.Command{
		Use:   `embed --model MODEL.onnx|DIR ["text" ... | --jsonl FILE]`,
		Short: "Embed sentences with a model and print one JSON line per input",
		Long: `embed tokenizes each input, runs the model (ONNX Runtime on CPU by default)
and prints one JSON line per input, in input order:
  {"index": 0, "embedding": [0.0123, ...]}

Inputs are the arguments; or --jsonl FILE with one {"text": "..."} object per
line (any text, newlines and control characters included; "-" reads stdin);
or, with neither, one text per line on stdin. Pooling (mean / CLS / max) and
normalisation come from the model folder's sentence-transformers files
(modules.json, 1_Pooling/config.json); without them m3e-base's mean pooling
and L2 normalisation apply. The vocabulary is the model's own (vocab.txt or
tokenizer.json beside the .onnx or in its folder) unless --vocab is given.`,
		Example: `  m3ectl embed --model testdata/m3e-tiny/model.onnx "m3e 是一个中文句向量模型" "Hello, world!"
  m3ectl embed --model ./m3e-base --batch-size 64 --jsonl texts.jsonl > vectors.jsonl
  printf '酒店很好\n房间很小\n' | m3ectl embed --model testdata/m3e-tiny/dynamo/model.onnx`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return fmt.Errorf("--model is required (a .onnx file or a model folder)")
			}
			if jsonl != "" && len(args) > 0 {
				return fmt.Errorf("give texts as arguments or --jsonl, not both")
			}
			for i, a := range args {
				if !utf8.ValidString(a) {
					return fmt.Errorf("argument %d: %w", i+1, engine.ErrInvalidUTF8)
				}
			}
			if bf.input != "" && (jsonl != "" || len(args) > 0) {
				return fmt.Errorf("give texts as arguments, --jsonl or --input, not several")
			}
			devices, err := parseDevices(bf.device)
			if err != nil {
				return err
			}
			cfg.Options.Device = devices[0]
			m, err := engine.ResolveModel(model)
			if err != nil {
				return err
			}
			cfg.Kind, cfg.Vocab = kind, vocab
			if bf.output != "" {
				return runBulk(cmd, m, cfg, devices, &bf, args, jsonl)
			}
			if bf.input != "" || len(devices) > 1 {
				return fmt.Errorf("--input and several --device need --output FILE (.npy, .parquet or .jsonl)")
			}
			emb, err := engine.NewEmbedder(m, cfg)
			if err != nil {
				return err
			}
			defer emb.Close()
			out := cmd.OutOrStdout()
			slog.Debug("model ready", "since_start", time.Since(processStart).Round(time.Millisecond))
			if len(args) > 0 {
				err := emb.EmbedAll(cmd.Context(), args, out)
				slog.Debug("first embedding out", "since_start", time.Since(processStart).Round(time.Millisecond))
				return err
			}
			in, name, closeIn, err := openTexts(cmd.InOrStdin(), jsonl)
			if err != nil {
				return err
			}
			defer closeIn()
			_, err = emb.EmbedStream(cmd.Context(), engine.NewTextScanner(in, name, jsonl != ""), out, logProgress())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model: a .onnx file or a Hugging Face / sentence-transformers folder")
	f.StringVar(&vocab, "vocab", "", "vocab.txt, tokenizer.json or a tokenizer folder (default: the model's own)")
	f.StringVar(&jsonl, "jsonl", "", `read {"text": "..."} JSON lines from FILE ("-" for stdin)`)
	f.IntVar(&cfg.BatchSize, "batch-size", engine.DefaultBatchSize, "texts per engine call (texts are grouped by length first)")
	f.StringVar(&kind, "engine", "cpu", "engine: cpu (ONNX Runtime), cuda, or auto (cuda when available)")
	f.IntVar(&cfg.Options.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	f.StringVar(&cfg.Options.ORTLib, "ort-lib", "", "path of libonnxruntime.so (default: $ONNXRUNTIME_LIB, then $XDG_DATA_HOME/m3ectl/onnxruntime, then third_party/onnxruntime, then system paths)")
	f.StringVar(&cfg.Options.Provider, "provider", "cpu", "ONNX Runtime execution provider: cpu, cuda, tensorrt (needs a GPU build of ONNX Runtime)")
	f.StringVar(&bf.device, "device", "0", "GPU ordinal(s): with --output, a list (0,1) spreads batches over the GPUs")
	addBulkFlags(f, &bf)
	f.BoolVar(&asJSON, "json", true, "output JSON lines (always on: embeddings have no text form)")
	return cmd
}

// openTexts opens the --jsonl file, or stdin when it is "-" or not given.
func openTexts(stdin io.Reader, jsonl string) (io.Reader, string, func(), error) {
	if jsonl == "" || jsonl == "-" {
		if f, ok := stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				slog.Info("reading texts from the terminal, one per line; end with Ctrl-D")
			}
		}
		return stdin, "stdin", func() {}, nil
	}
	f, err := os.Open(jsonl)
	if err != nil {
		return nil, "", nil, fmt.Errorf("--jsonl: %w", err)
	}
	return f, jsonl, func() { f.Close() }, nil
}

// logProgress reports long runs on stderr every few seconds.
func logProgress() engine.Progress {
	var last time.Duration
	return func(done int, elapsed time.Duration) {
		if elapsed-last < 2*time.Second {
			return
		}
		last = elapsed
		slog.Info("embedding", "texts", done, "per_second", int(float64(done)/elapsed.Seconds()))
	}
}
