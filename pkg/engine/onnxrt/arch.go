package onnxrt

import (
	"fmt"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// readArchitecture fills the vocabulary size and the longest sequence the
// model takes, which Embed checks batches against (an id past the embedding
// table makes ONNX Runtime fail with a cryptic Gather error; a row past the
// position table does too).
func (e *Engine) readArchitecture(m *engine.Model) error {
	if m.HFConfig == "" {
		return nil
	}
	c, err := engine.ReadHFConfig(m.HFConfig)
	if err != nil {
		return fmt.Errorf("model config: %w", err)
	}
	e.info.VocabSize = c.VocabSize
	e.info.MaxSeqLen = c.MaxPositionEmbeddings
	return nil
}
