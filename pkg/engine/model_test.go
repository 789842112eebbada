package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// m3e-base's own sentence-transformers files (classic format).
const (
	classicModules = `[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
]`
	classicPoolingMean = `{"word_embedding_dimension": 768, "pooling_mode_cls_token": false,
 "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
 "pooling_mode_mean_sqrt_len_tokens": false}`
	classicPoolingCLS = `{"word_embedding_dimension": 1024, "pooling_mode_cls_token": true,
 "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false,
 "pooling_mode_mean_sqrt_len_tokens": false}`
	modulesNoNormalize = `[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
]`
	hfConfig = `{"model_type": "bert", "hidden_size": 768, "vocab_size": 21128, "max_position_embeddings": 512}`
)

// writeTree creates files (path → content) under a fresh temporary folder.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolveModel(t *testing.T) {
	fixtureHF := filepath.Join("..", "..", "testdata", "m3e-tiny", "hf")
	tests := []struct {
		name      string
		files     map[string]string
		path      string // relative to the tree; "" = the root folder
		fixed     string // use this path instead of a created tree
		want      Model  // paths relative to the tree
		wantErr   string
		errIsNone bool // wantErr must wrap ErrNoModel
	}{
		{
			name: "classic m3e-base folder with model.onnx",
			files: map[string]string{
				"model.onnx": "x", "vocab.txt": "x", "tokenizer_config.json": "{}", "config.json": hfConfig,
				"modules.json": classicModules, "1_Pooling/config.json": classicPoolingMean, "2_Normalize/.keep": "",
			},
			want: Model{ONNX: "model.onnx", Tokenizer: ".", HFConfig: "config.json", Pooling: Pooling{PoolMean, true}, Dim: 768},
		},
		{
			name: "onnx/model.onnx export inside a Hugging Face folder",
			files: map[string]string{
				"onnx/model.onnx": "x", "tokenizer.json": "{}", "vocab.txt": "x", "config.json": hfConfig,
				"model.safetensors": "x", "modules.json": classicModules, "1_Pooling/config.json": classicPoolingMean,
			},
			want: Model{ONNX: "onnx/model.onnx", Tokenizer: ".", HFConfig: "config.json", Safetensors: "model.safetensors", Pooling: Pooling{PoolMean, true}, Dim: 768},
		},
		{
			name: "CLS pooling without Normalize",
			files: map[string]string{
				"model.onnx": "x", "vocab.txt": "x", "modules.json": modulesNoNormalize, "1_Pooling/config.json": classicPoolingCLS,
			},
			want: Model{ONNX: "model.onnx", Tokenizer: "vocab.txt", Pooling: Pooling{PoolCLS, false}, Dim: 1024},
		},
		{
			name: "new pooling format, max mode",
			files: map[string]string{
				"model.onnx": "x", "vocab.txt": "x", "modules.json": classicModules,
				"1_Pooling/config.json": `{"embedding_dimension": 64, "pooling_mode": "max", "include_prompt": true}`,
			},
			want: Model{ONNX: "model.onnx", Tokenizer: "vocab.txt", Pooling: Pooling{PoolMax, true}, Dim: 64},
		},
		{
			name:  "a single differently named export in onnx/",
			files: map[string]string{"onnx/model_optimized.onnx": "x", "vocab.txt": "x"},
			want:  Model{ONNX: "onnx/model_optimized.onnx", Tokenizer: "vocab.txt", Pooling: DefaultPooling},
		},
		{
			name:      "two exports and no model.onnx is ambiguous",
			files:     map[string]string{"a.onnx": "x", "onnx/b.onnx": "x"},
			wantErr:   "neither model.onnx",
			errIsNone: true,
		},
		{
			name:  "no modules.json means m3e-base's mean + normalize",
			files: map[string]string{"model.onnx": "x", "vocab.txt": "x"},
			want:  Model{ONNX: "model.onnx", Tokenizer: "vocab.txt", Pooling: DefaultPooling},
		},
		{
			name:  "bare .onnx file finds vocab.txt in its parent",
			files: map[string]string{"dynamo/model.onnx": "x", "dynamo/model.onnx.data": "x", "vocab.txt": "x"},
			path:  "dynamo/model.onnx",
			want:  Model{ONNX: "dynamo/model.onnx", Tokenizer: "vocab.txt", Pooling: DefaultPooling},
		},
		{
			name:  "safetensors-only folder (cuda backend)",
			files: map[string]string{"model.safetensors": "x", "vocab.txt": "x", "config.json": hfConfig},
			want:  Model{Safetensors: "model.safetensors", Tokenizer: "vocab.txt", HFConfig: "config.json", Pooling: DefaultPooling, Dim: 768},
		},
		{
			name:  "fixture hf folder (new sentence-transformers format, ONNX export beside it)",
			fixed: fixtureHF,
			want:  Model{ONNX: "model.onnx", Safetensors: "model.safetensors", Tokenizer: ".", HFConfig: "config.json", Pooling: Pooling{PoolMean, true}, Dim: 64},
		},
		{
			name:      "empty folder",
			files:     map[string]string{"README.md": "x"},
			wantErr:   "neither model.onnx",
			errIsNone: true,
		},
		{
			name:      "missing path",
			files:     map[string]string{},
			path:      "nope",
			wantErr:   "no such file",
			errIsNone: true,
		},
		{
			name:      "not an onnx file",
			files:     map[string]string{"model.bin": "x"},
			path:      "model.bin",
			wantErr:   "expected a .onnx file",
			errIsNone: true,
		},
		{
			name: "unsupported Dense module",
			files: map[string]string{"model.onnx": "x", "modules.json": `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
 {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
 {"idx":2,"name":"2","path":"2_Dense","type":"sentence_transformers.models.Dense"}]`, "1_Pooling/config.json": classicPoolingMean},
			wantErr: "not supported",
		},
		{
			name:    "pooling config missing",
			files:   map[string]string{"model.onnx": "x", "modules.json": classicModules},
			wantErr: "pooling module",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.fixed
			if root == "" {
				root = writeTree(t, tc.files)
			}
			path := root
			if tc.path != "" {
				path = filepath.Join(root, tc.path)
			}
			m, err := ResolveModel(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.errIsNone && !errors.Is(err, ErrNoModel) {
					t.Errorf("err %v does not wrap ErrNoModel", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rel := func(p string) string {
				if p == "" {
					return ""
				}
				r, err := filepath.Rel(root, p)
				if err != nil {
					t.Fatal(err)
				}
				return filepath.ToSlash(r)
			}
			got := Model{ONNX: rel(m.ONNX), Tokenizer: rel(m.Tokenizer), HFConfig: rel(m.HFConfig),
				Safetensors: rel(m.Safetensors), Pooling: m.Pooling, Dim: m.Dim}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
