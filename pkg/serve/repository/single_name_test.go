package repository

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSingleName(t *testing.T) {
	root := t.TempDir()
	mk := func(rel, config string) string {
		dir := filepath.Join(root, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if config != "" {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	named := mk("download", `{"_name_or_path": "moka-ai/m3e-base", "hidden_size": 768}`)
	hf := mk("m3e-small/hf", `{"hidden_size": 512}`)
	plain := mk("my-model", "")
	tests := []struct{ path, want string }{
		{named, "m3e-base"},
		{hf, "m3e-small"},
		{filepath.Join(hf, "model.onnx"), "m3e-small"},
		{plain, "my-model"},
		{filepath.Join(plain, "encoder-fp16.onnx"), "encoder-fp16"},
		{"../../../testdata/m3e-tiny/hf", "m3e-tiny"},
		{"../../../testdata/m3e-tiny/model.onnx", "m3e-tiny"},
	}
	for _, tc := range tests {
		if got := singleName(tc.path); got != tc.want {
			t.Errorf("singleName(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
