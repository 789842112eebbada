package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/engine/checkpoint"
)

// Model is a resolved model location: which files make up the model a user
// pointed at, and how its token states are pooled. Backends open what they
// need from it (the CPU backend the ONNX file, the CUDA backend safetensors).
type Model struct {
	Path        string // what the user gave
	Dir         string // the model folder (the .onnx file's folder for a bare file)
	ONNX        string // the ONNX graph, or "" when the folder has none
	Tokenizer   string // a file or folder for tokenizer.Load, or "" when none was found
	HFConfig    string // Hugging Face config.json, or ""
	Safetensors string // model.safetensors, or ""
	// Weights is the checkpoint m3ectl export reads: model.safetensors, else
	// pytorch_model.bin, in the folder or in its Transformer module's folder
	// (older sentence-transformers saves keep it in 0_Transformer/).
	Weights string
	Pooling Pooling // from modules.json / 1_Pooling/config.json; DefaultPooling without them
	Dim     int     // embedding width from the pooling config or config.json; 0 when unknown
}

// ErrNoModel says a path holds no usable model; callers print it as is.
var ErrNoModel = errors.New("no model found")

// ResolveModel finds the parts of a model from a path: a .onnx file (with the
// vocabulary beside it or in its parent folder), or a folder in the Hugging
// Face / sentence-transformers layout with model.onnx or onnx/model.onnx (or
// a single other .onnx file there).
// A folder with only model.safetensors is valid too (the CUDA backend reads
// it); the CPU backend then reports that it needs an ONNX file.
func ResolveModel(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("model %s: %w: no such file or folder", path, ErrNoModel)
		}
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	m := &Model{Path: path, Pooling: DefaultPooling}
	var roots []string // folders searched for tokenizer and configs, nearest first
	if st.IsDir() {
		m.Dir = path
		m.ONNX = findONNX(path)
		if isFile(filepath.Join(path, "model.safetensors")) {
			m.Safetensors = filepath.Join(path, "model.safetensors")
		}
		roots = []string{path}
		if sub := transformerDir(path); sub != path {
			roots = append(roots, sub)
		}
		for _, r := range roots {
			if m.Weights = checkpoint.Find(r); m.Weights != "" {
				break
			}
		}
		if m.ONNX == "" && m.Weights == "" {
			return nil, fmt.Errorf("model %s: %w: the folder has neither model.onnx, onnx/model.onnx, model.safetensors nor pytorch_model.bin", path, ErrNoModel)
		}
	} else {
		if !strings.EqualFold(filepath.Ext(path), ".onnx") {
			return nil, fmt.Errorf("model %s: %w: expected a .onnx file or a model folder", path, ErrNoModel)
		}
		m.ONNX = path
		m.Dir = filepath.Dir(path)
		// An export in onnx/ or dynamo/ keeps its tokenizer and configs one level up.
		roots = []string{m.Dir, filepath.Dir(m.Dir)}
	}
	m.Tokenizer = findTokenizer(roots)
	for _, r := range roots {
		if c := filepath.Join(r, "config.json"); isFile(c) {
			m.HFConfig = c
			break
		}
	}
	for _, r := range roots {
		if mods := filepath.Join(r, "modules.json"); isFile(mods) {
			if err := readPooling(m, r, mods); err != nil {
				return nil, fmt.Errorf("model %s: %w", path, err)
			}
			break
		}
	}
	if m.Dim == 0 && m.HFConfig != "" {
		if c, err := ReadHFConfig(m.HFConfig); err == nil {
			m.Dim = c.HiddenSize
		}
	}
	return m, nil
}

// transformerDir is the folder of the Transformer module that modules.json
// names (older sentence-transformers saves: 0_Transformer/), else dir.
func transformerDir(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "modules.json"))
	if err != nil {
		return dir
	}
	mods, err := ParseModules(data)
	if err != nil {
		return dir
	}
	for _, mod := range mods {
		if mod.Kind() == "Transformer" && mod.Path != "" {
			sub := filepath.Join(dir, filepath.FromSlash(mod.Path))
			if rel, err := filepath.Rel(dir, sub); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				if st, err := os.Stat(sub); err == nil && st.IsDir() {
					return sub
				}
			}
		}
	}
	return dir
}

// findONNX picks the folder's ONNX export: model.onnx, onnx/model.onnx, else
// the only .onnx file in the folder or in onnx/ (e.g. model_optimized.onnx).
// Several candidates and no model.onnx is ambiguous, and yields "".
func findONNX(dir string) string {
	for _, c := range []string{"model.onnx", filepath.Join("onnx", "model.onnx")} {
		if isFile(filepath.Join(dir, c)) {
			return filepath.Join(dir, c)
		}
	}
	var found []string
	for _, d := range []string{dir, filepath.Join(dir, "onnx")} {
		ms, _ := filepath.Glob(filepath.Join(d, "*.onnx"))
		for _, m := range ms {
			if isFile(m) {
				found = append(found, m)
			}
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

// findTokenizer returns the first folder with tokenizer.json, else the first
// vocab.txt. A folder is returned (not the file) when it has tokenizer.json or
// tokenizer_config.json, so that tokenizer.Load honours their settings.
func findTokenizer(roots []string) string {
	for _, r := range roots {
		if isFile(filepath.Join(r, "tokenizer.json")) {
			return r
		}
		if v := filepath.Join(r, "vocab.txt"); isFile(v) {
			if isFile(filepath.Join(r, "tokenizer_config.json")) {
				return r
			}
			return v
		}
	}
	return ""
}

// readPooling reads modules.json and the Pooling module's config.json.
func readPooling(m *Model, root, modulesPath string) error {
	data, err := os.ReadFile(modulesPath)
	if err != nil {
		return err
	}
	mods, err := ParseModules(data)
	if err != nil {
		return fmt.Errorf("%s: %w", modulesPath, err)
	}
	p := Pooling{Mode: PoolMean}
	for _, mod := range mods {
		switch mod.Kind() {
		case "Normalize":
			p.Normalize = true
		case "Pooling":
			cfgPath := filepath.Join(root, filepath.FromSlash(mod.Path), "config.json")
			cfg, err := os.ReadFile(cfgPath)
			if err != nil {
				return fmt.Errorf("pooling module %q: %w", mod.Path, err)
			}
			mode, dim, err := ParsePoolingConfig(cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", cfgPath, err)
			}
			p.Mode, m.Dim = mode, dim
		}
	}
	m.Pooling = p
	return nil
}

// HFConfig is the part of a Hugging Face config.json the engines check.
type HFConfig struct {
	ModelType             string  `json:"model_type"`
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	IntermediateSize      int     `json:"intermediate_size"`
	VocabSize             int     `json:"vocab_size"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	TypeVocabSize         int     `json:"type_vocab_size"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	HiddenAct             string  `json:"hidden_act"`
}

// ReadHFConfig reads a Hugging Face config.json.
func ReadHFConfig(path string) (*HFConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c HFConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
