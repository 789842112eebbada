package repository

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// singleName derives the model name of a --model path without --name: the
// model's own name where it has one, so that `serve --model ./m3e-base/hf`
// serves "m3e-base", not "hf".
//
//   - a folder: its config.json's `_name_or_path` (the last part of
//     "moka-ai/m3e-base"), else the folder's name, or the folder above it
//     when the folder is a generic "hf", "onnx" or "model";
//   - an .onnx file: its stem, or for a generic stem (model.onnx) the name
//     its folder gets.
//
// A name Triton would not accept falls back to "model".
func singleName(path string) string {
	clean, err := filepath.Abs(filepath.Clean(path))
	if err != nil {
		clean = filepath.Clean(path)
	}
	name := ""
	if st, err := os.Stat(clean); err == nil && st.IsDir() {
		name = folderName(clean)
	} else {
		base := filepath.Base(clean)
		stem := strings.TrimSuffix(base, filepath.Ext(base))
		if genericName(stem) {
			name = folderName(filepath.Dir(clean))
		} else {
			name = stem
		}
	}
	if name == "" || ValidateName(name) != nil {
		return "model"
	}
	return name
}

// folderName is a model folder's own name.
func folderName(dir string) string {
	if n := nameOrPath(filepath.Join(dir, "config.json")); n != "" {
		return n
	}
	base := filepath.Base(dir)
	if genericName(base) {
		parent := filepath.Dir(dir)
		if parent != dir {
			return filepath.Base(parent)
		}
	}
	return base
}

// genericName says a file or folder name tells nothing about the model.
func genericName(n string) bool {
	switch strings.ToLower(n) {
	case "hf", "onnx", "model", "1", "":
		return true
	}
	return false
}

// nameOrPath reads a Hugging Face config.json's _name_or_path and keeps its
// last part ("moka-ai/m3e-base" → "m3e-base").
func nameOrPath(configPath string) string {
	b, err := os.ReadFile(configPath)
	if err != nil {
		return ""
	}
	var c struct {
		NameOrPath string `json:"_name_or_path"`
	}
	if json.Unmarshal(b, &c) != nil || c.NameOrPath == "" {
		return ""
	}
	n := filepath.Base(strings.TrimRight(c.NameOrPath, "/\\"))
	if genericName(n) || ValidateName(n) != nil {
		return ""
	}
	return n
}
