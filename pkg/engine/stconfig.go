package engine

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Module is one entry of a sentence-transformers modules.json: the pipeline
// stages (Transformer → Pooling → Normalize) that turn text into a vector.
type Module struct {
	Idx  int    `json:"idx"`
	Name string `json:"name"`
	Path string `json:"path"`
	Type string `json:"type"`
}

// Kind is the module's class name without its Python package path, so that the
// classic "sentence_transformers.models.Pooling" and the newer
// "sentence_transformers.sentence_transformer.modules.pooling.Pooling" compare equal.
func (m Module) Kind() string {
	t := m.Type
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		t = t[i+1:]
	}
	return t
}

// ParseModules decodes a modules.json and checks that every stage is one the
// engines implement: a Transformer, at most one Pooling, at most one Normalize.
// Other stages (Dense, LayerNorm, ...) change the vector, so a model that has
// them is refused rather than served with silently different embeddings.
func ParseModules(data []byte) ([]Module, error) {
	var mods []Module
	if err := json.Unmarshal(data, &mods); err != nil {
		return nil, fmt.Errorf("modules.json: %w", err)
	}
	seen := map[string]bool{}
	for _, m := range mods {
		k := m.Kind()
		switch k {
		case "Transformer", "Pooling", "Normalize":
		default:
			return nil, fmt.Errorf("modules.json: module %q of type %q is not supported (only Transformer, Pooling, Normalize)", m.Name, m.Type)
		}
		if seen[k] {
			return nil, fmt.Errorf("modules.json: more than one %s module", k)
		}
		seen[k] = true
	}
	if !seen["Pooling"] {
		return nil, fmt.Errorf("modules.json: no Pooling module")
	}
	return mods, nil
}

// poolingConfig holds both layouts of 1_Pooling/config.json: the classic one
// (m3e-base's own: word_embedding_dimension and one boolean per mode) and the
// newer one (embedding_dimension and pooling_mode as a name).
type poolingConfig struct {
	WordEmbeddingDimension *int            `json:"word_embedding_dimension"`
	EmbeddingDimension     *int            `json:"embedding_dimension"`
	PoolingMode            json.RawMessage `json:"pooling_mode"`
	CLSToken               bool            `json:"pooling_mode_cls_token"`
	MeanTokens             bool            `json:"pooling_mode_mean_tokens"`
	MaxTokens              bool            `json:"pooling_mode_max_tokens"`
	MeanSqrtLenTokens      bool            `json:"pooling_mode_mean_sqrt_len_tokens"`
	WeightedMeanTokens     bool            `json:"pooling_mode_weightedmean_tokens"`
	LastToken              bool            `json:"pooling_mode_lasttoken"`
}

// ParsePoolingConfig decodes a sentence-transformers 1_Pooling/config.json in
// either format and returns the pooling mode and embedding width (0 when the
// file does not say). Modes the engines do not implement, and several modes at
// once (sentence-transformers concatenates them), are errors.
func ParsePoolingConfig(data []byte) (PoolingMode, int, error) {
	var c poolingConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, 0, fmt.Errorf("pooling config: %w", err)
	}
	dim := 0
	switch {
	case c.EmbeddingDimension != nil:
		dim = *c.EmbeddingDimension
	case c.WordEmbeddingDimension != nil:
		dim = *c.WordEmbeddingDimension
	}
	if dim < 0 {
		return 0, 0, fmt.Errorf("pooling config: negative embedding dimension %d", dim)
	}
	var names []string
	if len(c.PoolingMode) > 0 && string(c.PoolingMode) != "null" {
		var one string
		if err := json.Unmarshal(c.PoolingMode, &one); err == nil {
			names = []string{one}
		} else if err := json.Unmarshal(c.PoolingMode, &names); err != nil {
			return 0, 0, fmt.Errorf("pooling config: pooling_mode is neither a name nor a list of names")
		}
	} else {
		for _, f := range []struct {
			on   bool
			name string
		}{{c.CLSToken, "cls"}, {c.MeanTokens, "mean"}, {c.MaxTokens, "max"},
			{c.MeanSqrtLenTokens, "mean_sqrt_len_tokens"}, {c.WeightedMeanTokens, "weightedmean"}, {c.LastToken, "lasttoken"}} {
			if f.on {
				names = append(names, f.name)
			}
		}
	}
	switch len(names) {
	case 0:
		return 0, 0, fmt.Errorf("pooling config: no pooling mode set")
	case 1:
	default:
		return 0, 0, fmt.Errorf("pooling config: several pooling modes %v (concatenated pooling is not supported)", names)
	}
	mode, err := ParsePoolingMode(names[0])
	if err != nil {
		return 0, 0, fmt.Errorf("pooling config: %w", err)
	}
	return mode, dim, nil
}
