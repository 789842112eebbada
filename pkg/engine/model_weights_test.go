package engine

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResolveModelFindsEitherCheckpoint: a folder with only
// pytorch_model.bin, and the older sentence-transformers layout that keeps
// the Transformer module (config, weights, vocabulary) in 0_Transformer/.
func TestResolveModelFindsEitherCheckpoint(t *testing.T) {
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := t.TempDir()
	write(filepath.Join(bin, "pytorch_model.bin"), "PK")
	write(filepath.Join(bin, "config.json"), `{"hidden_size": 768}`)
	write(filepath.Join(bin, "vocab.txt"), "[PAD]\n")
	m, err := ResolveModel(bin)
	if err != nil {
		t.Fatal(err)
	}
	if m.Weights != filepath.Join(bin, "pytorch_model.bin") || m.Safetensors != "" || m.Dim != 768 {
		t.Errorf("pytorch_model.bin folder: %+v", m)
	}
	old := t.TempDir()
	write(filepath.Join(old, "modules.json"), `[{"idx":0,"name":"0","path":"0_Transformer","type":"sentence_transformers.models.Transformer"},
		{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]`)
	write(filepath.Join(old, "1_Pooling", "config.json"), `{"word_embedding_dimension": 768, "pooling_mode_cls_token": true}`)
	write(filepath.Join(old, "0_Transformer", "model.safetensors"), "x")
	write(filepath.Join(old, "0_Transformer", "config.json"), `{"hidden_size": 768}`)
	write(filepath.Join(old, "0_Transformer", "vocab.txt"), "[PAD]\n")
	m, err = ResolveModel(old)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(old, "0_Transformer")
	if m.Weights != filepath.Join(sub, "model.safetensors") || m.HFConfig != filepath.Join(sub, "config.json") ||
		m.Tokenizer != filepath.Join(sub, "vocab.txt") || m.Pooling.Mode != PoolCLS {
		t.Errorf("0_Transformer layout: %+v", m)
	}
	if _, err := ResolveModel(t.TempDir()); err == nil {
		t.Error("an empty folder resolved")
	}
}
