package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

func init() { register(newTokenizeCmd) }

// tokenizeFlags are the tokenize command's options.
type tokenizeFlags struct {
	vocab     string
	noLower   bool
	maxLength int
	jsonl     string
}

func newTokenizeCmd() *cobra.Command {
	var f tokenizeFlags
	cmd := &cobra.Command{
		Use:   `tokenize --vocab vocab.txt|tokenizer.json|DIR [--no-lower] [--max-length N] ("text" ... | --jsonl FILE)`,
		Short: "Tokenise texts with the model's BERT WordPiece tokenizer and print ids and tokens",
		Long: `Tokenises each text exactly as transformers.BertTokenizer does ([CLS] … [SEP],
truncated to --max-length) and prints one JSON line per text, in order:
{"ids":[...],"tokens":[...]}. The output is always JSON Lines.

--vocab takes a vocab.txt, a tokenizer.json, or a model folder (tokenizer.json
preferred, else vocab.txt; tokenizer_config.json's do_lower_case,
strip_accents and tokenize_chinese_chars are honoured). Texts come from the
arguments, from a JSON Lines file of {"text": "..."} objects ("-" for
stdin), or, with neither, one text per line on stdin (as embed reads them).
Text that is not valid UTF-8 is an error naming the input.`,
		Example: `  m3ectl tokenize --vocab testdata/m3e-tiny/hf "m3e 是一个中文句向量模型" "Hello, world!"
  m3ectl tokenize --vocab testdata/m3e-tiny/vocab.txt --max-length 16 --jsonl texts.jsonl
  echo '{"text":"你好,世界!"}' | m3ectl tokenize --vocab tokenizer.json --jsonl -
  printf '酒店很好\n房间很小\n' | m3ectl tokenize --vocab testdata/m3e-tiny/hf`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTokenize(cmd.InOrStdin(), cmd.OutOrStdout(), f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.vocab, "vocab", "", "vocab.txt, tokenizer.json, or a model folder (required)")
	fl.BoolVar(&f.noLower, "no-lower", false, "do not lower-case (nor strip accents), for cased vocabularies")
	fl.IntVar(&f.maxLength, "max-length", 0, "truncate to N ids, [CLS] and [SEP] included (default: the tokenizer's, 512)")
	fl.StringVar(&f.jsonl, "jsonl", "", `read texts from this JSON Lines file of {"text": "..."} ("-": stdin)`)
	var asJSON bool
	fl.BoolVar(&asJSON, "json", true, "output JSON lines (always on, as for embed)")
	_ = cmd.MarkFlagRequired("vocab")
	return cmd
}

// runTokenize loads the tokenizer, then tokenises the arguments or the JSON
// Lines input, writing one Encoding per line.
func runTokenize(stdin io.Reader, stdout io.Writer, f tokenizeFlags, args []string) error {
	switch {
	case f.jsonl != "" && len(args) > 0:
		return errors.New("give texts as arguments or with --jsonl, not both")
	case f.maxLength < 0:
		return fmt.Errorf("--max-length %d: must be positive", f.maxLength)
	}
	for i, a := range args {
		if !utf8.ValidString(a) {
			return fmt.Errorf("argument %d: %w", i+1, engine.ErrInvalidUTF8)
		}
	}
	tok, err := tokenizer.Load(f.vocab)
	if err != nil {
		return err
	}
	if f.noLower {
		tok = tok.WithLowercase(false)
	}
	if f.maxLength > 0 {
		tok = tok.WithMaxLength(f.maxLength)
	}
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if f.jsonl == "" && len(args) > 0 {
		for _, a := range args {
			if err := enc.Encode(tok.Encoding(a)); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	in, name := stdin, "stdin"
	if f.jsonl != "" && f.jsonl != "-" {
		file, err := os.Open(f.jsonl)
		if err != nil {
			return err
		}
		defer file.Close()
		in, name = file, f.jsonl
	}
	// With neither arguments nor --jsonl, one text per line on stdin, as
	// embed reads it.
	sc := engine.NewTextScanner(in, name, f.jsonl != "")
	for sc.Scan() {
		if err := enc.Encode(tok.Encoding(sc.Text())); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		w.Flush() // keep the lines before the bad one
		return err
	}
	return w.Flush()
}
