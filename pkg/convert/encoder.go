package convert

import (
	"errors"
	"fmt"
)

// ErrNotEncoder marks a graph without a [batch, seq, hidden] float output,
// which sentence embedding needs (token states to pool).
var ErrNotEncoder = errors.New("the graph is not an encoder")

// HiddenStates returns the output that carries the token states: the first
// 3-D floating-point output. Graphs exported with a pooler have a second,
// 2-D output, which this skips.
func (r *Report) HiddenStates() (ValueInfo, error) {
	for _, o := range r.Outputs {
		switch o.DType {
		case "float32", "float16", "bfloat16", "float64":
			if len(o.Shape) == 3 {
				return o, nil
			}
		}
	}
	var outs []string
	for _, o := range r.Outputs {
		outs = append(outs, fmt.Sprintf("%s %s%v", o.Name, o.DType, o.Shape))
	}
	return ValueInfo{}, fmt.Errorf("%s: %w: no 3-D float output [batch, seq, hidden] (outputs: %v)", r.Path, ErrNotEncoder, outs)
}

// IsEncoder reports, as an error wrapping ErrNotEncoder, why a graph cannot
// produce sentence embeddings; nil when it can.
func (r *Report) IsEncoder() error {
	_, err := r.HiddenStates()
	return err
}

// VocabMismatchError says that a tokenizer's vocabulary and a model's word
// embedding table disagree: ids past the table would read garbage or fail.
type VocabMismatchError struct {
	Model      string
	TableRows  int // rows of the model's word-embedding table
	VocabSize  int // entries in the tokenizer's vocabulary
	VocabLabel string
}

// Error implements error.
func (e *VocabMismatchError) Error() string {
	return fmt.Sprintf("%s: vocabulary %s has %d entries but the model's word-embedding table has %d rows; they do not belong together",
		e.Model, e.VocabLabel, e.VocabSize, e.TableRows)
}

// CheckVocab compares a tokenizer's vocabulary size with the model's word
// embedding table. A vocabulary larger than the table is an error (its high
// ids fall outside the table); a smaller one is accepted only when it is
// within 1% of the table, since exporters may pad tables to a multiple of
// 8 or 64. label names the vocabulary file in the message. Nothing is
// checked when the table was not detected.
func (r *Report) CheckVocab(vocabSize int, label string) error {
	if r.Architecture == nil || r.Architecture.VocabSize <= 0 || vocabSize <= 0 {
		return nil
	}
	rows := r.Architecture.VocabSize
	if vocabSize > rows || rows-vocabSize > rows/100 {
		return &VocabMismatchError{Model: r.Path, TableRows: rows, VocabSize: vocabSize, VocabLabel: label}
	}
	return nil
}
