// Package testmodels makes the model files tests need from the bundled
// fixture, so that no large binary is committed twice.
package testmodels

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

var pooled struct {
	sync.Mutex
	path string
}

// PooledOnce is Pooled, made once per process and shared.
func PooledOnce(tinyDir string) (string, error) {
	pooled.Lock()
	defer pooled.Unlock()
	if pooled.path != "" {
		return pooled.path, nil
	}
	p, err := Pooled(tinyDir)
	if err == nil {
		pooled.path = p
	}
	return p, err
}

// Remove deletes what PooledOnce made (call it from TestMain).
func Remove() {
	pooled.Lock()
	defer pooled.Unlock()
	if pooled.path != "" {
		os.RemoveAll(filepath.Dir(pooled.path))
		pooled.path = ""
	}
}

// Pooled writes tinyDir/model.onnx (m3e-tiny, hidden states [batch, seq,
// 64]) with pkg/convert's mean-pooling and L2-normalising head (what
// m3ectl convert --pooling mean --normalize writes), outputting embeddings
// [batch, 64], into a new temporary folder, and returns its path. The
// caller removes the folder.
func Pooled(tinyDir string) (string, error) {
	dir, err := os.MkdirTemp("", "m3ectl-pooled-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "model.onnx")
	if _, err := convert.Convert(filepath.Join(tinyDir, "model.onnx"), p, convert.ConvertOptions{Pooling: "mean", Normalize: true}); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return p, nil
}
