package engine

import (
	"fmt"
	"strings"
)

// PoolingMode says how per-token hidden states become one sentence vector.
type PoolingMode int

// Pooling modes, named as sentence-transformers names them.
const (
	PoolMean PoolingMode = iota // mean over tokens under the attention mask (m3e-base)
	PoolCLS                     // the [CLS] token's state
	PoolMax                     // element-wise max over tokens under the mask
)

// String returns the sentence-transformers name of the mode.
func (m PoolingMode) String() string {
	switch m {
	case PoolCLS:
		return "cls"
	case PoolMax:
		return "max"
	default:
		return "mean"
	}
}

// ParsePoolingMode reads a mode by its sentence-transformers name.
func ParsePoolingMode(name string) (PoolingMode, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "mean", "mean_tokens":
		return PoolMean, nil
	case "cls", "cls_token":
		return PoolCLS, nil
	case "max", "max_tokens":
		return PoolMax, nil
	}
	return 0, fmt.Errorf("pooling mode %q is not supported (mean, cls, max)", name)
}

// Pooling is a model's pooling step and whether a Normalize module follows it.
type Pooling struct {
	Mode      PoolingMode
	Normalize bool
}

// DefaultPooling is m3e-base's: mean pooling then L2 normalisation.
var DefaultPooling = Pooling{Mode: PoolMean, Normalize: true}
