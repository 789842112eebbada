// Package checkpoint opens a Hugging Face checkpoint's weights, whether the
// folder ships model.safetensors or only PyTorch's pytorch_model.bin, as one
// safetensors.File, so that every weight loader (the CUDA engine, m3ectl
// export) reads both formats the same way. BERT lets the tensor names vary
// by prefix ("bert.", "model.", "0.auto_model.") and by era (TensorFlow-
// converted LayerNorm gamma/beta); BERT resolves those once.
package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/engine/safetensors"
)

// Files lists the weight files Find looks for, in order of preference:
// safetensors needs no unpickling and is memory-mappable.
var Files = []string{"model.safetensors", "pytorch_model.bin"}

// Find returns the weight file in dir, or "" when it has none.
func Find(dir string) string {
	for _, n := range Files {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// Open reads a safetensors file or a PyTorch checkpoint (the zip format of
// torch.save since PyTorch 1.6), chosen by the file's first bytes.
func Open(path string) (*safetensors.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var magic [4]byte
	_, err = f.ReadAt(magic[:], 0)
	f.Close()
	if err == nil && string(magic[:]) == "PK\x03\x04" {
		return OpenTorch(path)
	}
	return safetensors.Open(path)
}

// OpenMapped is Open with a safetensors file mapped into memory rather than
// read (safetensors.OpenMapped); the returned function unmaps it, after
// which the tensors' data must not be used. A PyTorch checkpoint is read
// as Open reads it.
func OpenMapped(path string) (*safetensors.File, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	var magic [4]byte
	_, err = f.ReadAt(magic[:], 0)
	f.Close()
	if err == nil && string(magic[:]) == "PK\x03\x04" {
		t, err := OpenTorch(path)
		return t, func() error { return nil }, err
	}
	m, err := safetensors.OpenMapped(path)
	if err != nil {
		return nil, nil, err
	}
	return m.File, m.Close, nil
}

// BERT finds a BERT encoder's tensors by their Hugging Face names
// ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight").
type BERT struct {
	File   *safetensors.File
	Prefix string // "", "bert.", "model." or "0.auto_model."
}

// Prefixes are the name prefixes BERT checkpoints use: BertModel saves none,
// task heads (BertForMaskedLM …) "bert.", some wrappers "model.", and old
// sentence-transformers saves of the whole pipeline "0.auto_model.".
var Prefixes = []string{"", "bert.", "model.", "0.auto_model."}

// NewBERT picks the prefix under which the word embeddings are stored.
func NewBERT(f *safetensors.File) (*BERT, error) {
	for _, p := range Prefixes {
		if f.Tensor(p+"embeddings.word_embeddings.weight") != nil {
			return &BERT{File: f, Prefix: p}, nil
		}
	}
	return nil, fmt.Errorf("no embeddings.word_embeddings.weight tensor (with or without a bert./model. prefix): not a BERT checkpoint")
}

// Tensor returns the named tensor, or nil. LayerNorm weights saved under
// their TensorFlow names (gamma, beta) are found by their PyTorch names.
func (b *BERT) Tensor(name string) *safetensors.Tensor {
	t := b.File.Tensor(b.Prefix + name)
	if t == nil && strings.HasSuffix(name, "LayerNorm.weight") {
		t = b.File.Tensor(b.Prefix + strings.TrimSuffix(name, "weight") + "gamma")
	}
	if t == nil && strings.HasSuffix(name, "LayerNorm.bias") {
		t = b.File.Tensor(b.Prefix + strings.TrimSuffix(name, "bias") + "beta")
	}
	return t
}

// Float32 returns the named tensor as float32 values, checking its shape.
func (b *BERT) Float32(name string, shape ...int) ([]float32, error) {
	t := b.Tensor(name)
	if t == nil {
		return nil, fmt.Errorf("weight %s missing", b.Prefix+name)
	}
	if !sameShape(t.Shape, shape) {
		return nil, fmt.Errorf("weight %s has shape %v, want %v", t.Name, t.Shape, shape)
	}
	return t.Float32()
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
