package onnxrt

import (
	"fmt"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

// readArchitecture fills the vocabulary size and the longest sequence the
// model takes, which NewEmbedder and Embed check against: an id past the
// word-embedding table, or a row past the position table, would otherwise
// fail deep inside ONNX Runtime with a Gather error, or (a vocabulary that is
// merely smaller) silently embed the wrong tokens.
//
// The sizes come from the graph itself (pkg/convert reads the embedding
// initializers; ONNX Runtime's API does not expose initializer shapes), else
// from the folder's config.json.
func (e *Engine) readArchitecture(m *engine.Model, r *convert.Report) error {
	if r != nil && r.Architecture != nil && r.Architecture.VocabSize > 0 {
		e.info.VocabSize = r.Architecture.VocabSize
		e.info.MaxSeqLen = r.Architecture.MaxPositions
		return nil
	}
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
