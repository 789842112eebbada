package engine

import (
	"strings"
	"testing"
)

func TestParsePoolingConfig(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		mode    PoolingMode
		dim     int
		wantErr string
	}{
		{"classic mean (m3e-base)", classicPoolingMean, PoolMean, 768, ""},
		{"classic cls", classicPoolingCLS, PoolCLS, 1024, ""},
		{"classic max", `{"word_embedding_dimension": 8, "pooling_mode_max_tokens": true}`, PoolMax, 8, ""},
		{"new format mean (fixture)", `{"embedding_dimension": 64, "pooling_mode": "mean", "include_prompt": true}`, PoolMean, 64, ""},
		{"new format cls", `{"embedding_dimension": 64, "pooling_mode": "cls"}`, PoolCLS, 64, ""},
		{"new format list of one", `{"pooling_mode": ["max"]}`, PoolMax, 0, ""},
		{"new format takes precedence", `{"pooling_mode": "cls", "pooling_mode_mean_tokens": true}`, PoolCLS, 0, ""},
		{"several modes concatenate", `{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}`, 0, 0, "several pooling modes"},
		{"mean_sqrt_len unsupported", `{"pooling_mode_mean_sqrt_len_tokens": true}`, 0, 0, "not supported"},
		{"lasttoken unsupported", `{"pooling_mode": "lasttoken"}`, 0, 0, "not supported"},
		{"no mode", `{"word_embedding_dimension": 768}`, 0, 0, "no pooling mode"},
		{"mode of wrong type", `{"pooling_mode": 3}`, 0, 0, "neither a name"},
		{"negative dimension", `{"embedding_dimension": -1, "pooling_mode": "mean"}`, 0, 0, "negative"},
		{"not json", `{`, 0, 0, "pooling config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode, dim, err := ParsePoolingConfig([]byte(tc.json))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mode != tc.mode || dim != tc.dim {
				t.Errorf("got (%v, %d), want (%v, %d)", mode, dim, tc.mode, tc.dim)
			}
		})
	}
}

func TestParseModules(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		kinds   string
		wantErr string
	}{
		{"classic", classicModules, "Transformer Pooling Normalize", ""},
		{"new package paths", `[{"type":"sentence_transformers.base.modules.transformer.Transformer"},
			{"path":"1_Pooling","type":"sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
			{"type":"sentence_transformers.base.modules.normalize.Normalize"}]`, "Transformer Pooling Normalize", ""},
		{"no pooling", `[{"type":"sentence_transformers.models.Transformer"}]`, "", "no Pooling module"},
		{"two poolings", `[{"type":"x.Pooling"},{"type":"x.Pooling"}]`, "", "more than one Pooling"},
		{"dense", `[{"type":"x.Pooling"},{"type":"sentence_transformers.models.Dense"}]`, "", "not supported"},
		{"not a list", `{}`, "", "modules.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods, err := ParseModules([]byte(tc.json))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, m := range mods {
				kinds = append(kinds, m.Kind())
			}
			if got := strings.Join(kinds, " "); got != tc.kinds {
				t.Errorf("kinds = %q, want %q", got, tc.kinds)
			}
		})
	}
}

// FuzzParsePoolingConfig: any bytes give a supported mode with a
// non-negative width, or an error; never a panic.
func FuzzParsePoolingConfig(f *testing.F) {
	for _, s := range []string{classicPoolingMean, classicPoolingCLS, `{"embedding_dimension": 64, "pooling_mode": "mean"}`,
		`{"pooling_mode": ["cls"]}`, `{"pooling_mode": null}`, `[]`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mode, dim, err := ParsePoolingConfig(data)
		if err != nil {
			return
		}
		if mode != PoolMean && mode != PoolCLS && mode != PoolMax {
			t.Fatalf("mode %d", mode)
		}
		if dim < 0 {
			t.Fatalf("dim %d", dim)
		}
	})
}

// FuzzParseModules: accepted module lists always contain exactly one Pooling
// and only supported kinds.
func FuzzParseModules(f *testing.F) {
	for _, s := range []string{classicModules, modulesNoNormalize, `[]`, `[{"type":"Pooling"}]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mods, err := ParseModules(data)
		if err != nil {
			return
		}
		pools := 0
		for _, m := range mods {
			switch m.Kind() {
			case "Pooling":
				pools++
			case "Transformer", "Normalize":
			default:
				t.Fatalf("accepted kind %q", m.Kind())
			}
		}
		if pools != 1 {
			t.Fatalf("%d Pooling modules accepted", pools)
		}
	})
}
