//go:build !unix

package convert

import (
	"fmt"
	"os"
)

// mapFile reads the whole file where memory mapping is not available; the
// model then briefly exists twice (file bytes and decoded tensors).
func mapFile(path string) (data []byte, release func(), err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return nil, nil, fmt.Errorf("%s is a directory, not an .onnx file", path)
	}
	data, err = os.ReadFile(path)
	return data, func() {}, err
}
