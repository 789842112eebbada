package engine

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

// Pooling is a model's pooling step and whether a Normalize module follows it.
type Pooling struct {
	Mode      PoolingMode
	Normalize bool
}

// DefaultPooling is m3e-base's: mean pooling then L2 normalisation.
var DefaultPooling = Pooling{Mode: PoolMean, Normalize: true}
