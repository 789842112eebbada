package cuda

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadConfig(t *testing.T) {
	for _, c := range []struct {
		name, json string
		want       bertConfig
		err        string
	}{
		{"m3e-base", `{"model_type":"bert","hidden_size":768,"num_hidden_layers":12,"num_attention_heads":12,"intermediate_size":3072,"vocab_size":21128,"max_position_embeddings":512,"layer_norm_eps":1e-12,"hidden_act":"gelu"}`,
			bertConfig{Layers: 12, Hidden: 768, Heads: 12, HeadDim: 64, Intermediate: 3072, Vocab: 21128, MaxPos: 512, Eps: 1e-12}, ""},
		{"defaults for eps and positions", `{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"vocab_size":10}`,
			bertConfig{Layers: 2, Hidden: 64, Heads: 4, HeadDim: 16, Intermediate: 128, Vocab: 10, MaxPos: 512, Eps: 1e-12}, ""},
		{"not bert", `{"model_type":"xlm-roberta","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128}`, bertConfig{}, "BERT encoders only"},
		{"other activation", `{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"hidden_act":"relu"}`, bertConfig{}, "exact gelu only"},
		{"heads do not divide", `{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":5,"intermediate_size":128}`, bertConfig{}, "incomplete BERT config"},
		{"empty", `{}`, bertConfig{}, "incomplete BERT config"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(p, []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readConfig(p)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestKernelSourceIsEmbedded(t *testing.T) {
	for _, k := range []string{"embed_ln", "add_ln", "gelu", "pool", "attn_simple", "attn_mma"} {
		if !strings.Contains(kernelSource, `void `+k+`(`) && !strings.Contains(kernelSource, k+`(`) {
			t.Errorf("kernel %s missing from kernels.cu", k)
		}
	}
}
