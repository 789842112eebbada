package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/engine/checkpoint"
	"github.com/m3ectl/m3ectl/pkg/engine/safetensors"
)

// bertConfig is the encoder shape the kernels are compiled for.
type bertConfig struct {
	Layers, Hidden, Heads, HeadDim, Intermediate, Vocab, MaxPos int
	Eps                                                         float32
}

func readConfig(path string) (bertConfig, error) {
	hc, err := engine.ReadHFConfig(path)
	if err != nil {
		return bertConfig{}, fmt.Errorf("read model config: %w", err)
	}
	c := bertConfig{Layers: hc.NumHiddenLayers, Hidden: hc.HiddenSize, Heads: hc.NumAttentionHeads,
		Intermediate: hc.IntermediateSize, Vocab: hc.VocabSize, MaxPos: hc.MaxPositionEmbeddings, Eps: float32(hc.LayerNormEps)}
	if c.Eps == 0 {
		c.Eps = 1e-12
	}
	if c.MaxPos == 0 {
		c.MaxPos = 512
	}
	if hc.ModelType != "" && hc.ModelType != "bert" {
		return c, fmt.Errorf("%s: model_type %q: the cuda engine runs BERT encoders only; use --engine cpu", path, hc.ModelType)
	}
	if act := strings.ToLower(hc.HiddenAct); act != "" && act != "gelu" {
		return c, fmt.Errorf("%s: hidden_act %q: the cuda engine implements BERT's exact gelu only; use --engine cpu", path, hc.HiddenAct)
	}
	if c.Layers <= 0 || c.Hidden <= 0 || c.Heads <= 0 || c.Intermediate <= 0 || c.Hidden%c.Heads != 0 {
		return c, fmt.Errorf("%s: incomplete BERT config (layers %d, hidden %d, heads %d, intermediate %d)", path, c.Layers, c.Hidden, c.Heads, c.Intermediate)
	}
	c.HeadDim = c.Hidden / c.Heads
	if c.Hidden%2 != 0 || c.HeadDim%2 != 0 {
		return c, fmt.Errorf("%s: hidden %d / head size %d must be even", path, c.Hidden, c.HeadDim)
	}
	return c, nil
}

// hostTensor is a weight converted to the engine's storage type, ready to upload.
type hostTensor []byte

// weightSource finds tensors by their Hugging Face BERT names, with or
// without a "bert." / "model." prefix (BertModel vs task-head checkpoints).
type weightSource struct {
	f      *safetensors.File
	prefix string
}

func newWeightSource(f *safetensors.File) (*weightSource, error) {
	for _, p := range []string{"", "bert.", "model.", "0.auto_model."} {
		if f.Tensor(p+"embeddings.word_embeddings.weight") != nil {
			return &weightSource{f: f, prefix: p}, nil
		}
	}
	return nil, fmt.Errorf("no embeddings.word_embeddings.weight tensor: not a BERT checkpoint")
}

// get returns the named tensor as float32, checking its element count.
func (s *weightSource) get(name string, want int) ([]float32, error) {
	t := s.f.Tensor(s.prefix + name)
	if t == nil && strings.HasSuffix(name, "LayerNorm.weight") {
		t = s.f.Tensor(s.prefix + strings.TrimSuffix(name, "weight") + "gamma")
	}
	if t == nil && strings.HasSuffix(name, "LayerNorm.bias") {
		t = s.f.Tensor(s.prefix + strings.TrimSuffix(name, "bias") + "beta")
	}
	if t == nil {
		return nil, fmt.Errorf("weight %s missing", s.prefix+name)
	}
	if t.Elements() != want {
		return nil, fmt.Errorf("weight %s has %d elements (shape %v), want %d", t.Name, t.Elements(), t.Shape, want)
	}
	return t.Float32()
}

// encode turns float32 values into the device storage type's bytes.
func encode(v []float32, fp16 bool) []byte {
	if fp16 {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], safetensors.FloatToHalf(x))
		}
		return b
	}
	return encodeF32(v)
}

func encodeF32(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func mathFloat32bits(f float32) uint32 { return math.Float32bits(f) }

// layerWeights are one encoder layer's device tensors. The query, key and
// value projections are stacked into one [3H, H] matrix so that one GEMM
// computes all three.
type layerWeights struct {
	qkvW, qkvB, outW, outB, ln1G, ln1B, inW, inB, out2W, out2B, ln2G, ln2B devPtr
}

type weights struct {
	word, pos, type0, embG, embB devPtr
	layers                       []layerWeights
	all                          []devPtr
	bytes                        int64
}

func (w *weights) free() {
	for _, p := range w.all {
		memFree(p)
	}
	w.all = nil
}

// weightJob is one device tensor: where its pointer goes and how its bytes
// are made from the checkpoint.
type weightJob struct {
	dst  *devPtr
	conv func() ([]byte, error)
	data []byte
}

// hostWeights are a checkpoint's tensors converted to the device layout in
// host memory, ready to upload.
type hostWeights struct {
	w    *weights
	jobs []weightJob
}

// prepareWeights maps model.safetensors (or reads pytorch_model.bin, through
// pkg/engine/checkpoint as m3ectl export does) and converts every tensor to
// the device layout on all cores. It touches no CUDA, so OpenConfig runs it
// while the driver initialises and the kernels load.
func prepareWeights(path string, c bertConfig, fp16 bool) (*hostWeights, error) {
	f, closeF, err := checkpoint.OpenMapped(path)
	if err != nil {
		return nil, err
	}
	defer closeF()
	src, err := newWeightSource(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	w := &weights{layers: make([]layerWeights, c.Layers)}
	var jobs []weightJob
	act := func(dst *devPtr, name string, n int) {
		jobs = append(jobs, weightJob{dst: dst, conv: func() ([]byte, error) {
			v, err := src.get(name, n)
			if err != nil {
				return nil, err
			}
			return encode(v, fp16), nil
		}})
	}
	f32 := func(dst *devPtr, name string, n int) {
		jobs = append(jobs, weightJob{dst: dst, conv: func() ([]byte, error) {
			v, err := src.get(name, n)
			if err != nil {
				return nil, err
			}
			return encodeF32(v), nil
		}})
	}
	H, I := c.Hidden, c.Intermediate
	act(&w.word, "embeddings.word_embeddings.weight", c.Vocab*H)
	act(&w.pos, "embeddings.position_embeddings.weight", c.MaxPos*H)
	jobs = append(jobs, weightJob{dst: &w.type0, conv: func() ([]byte, error) {
		tt := src.f.Tensor(src.prefix + "embeddings.token_type_embeddings.weight")
		if tt == nil || tt.Elements() < H {
			return nil, fmt.Errorf("weight embeddings.token_type_embeddings.weight missing")
		}
		tv, err := tt.Float32()
		if err != nil {
			return nil, err
		}
		return encode(tv[:H], fp16), nil
	}})
	f32(&w.embG, "embeddings.LayerNorm.weight", H)
	f32(&w.embB, "embeddings.LayerNorm.bias", H)
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		lw := &w.layers[l]
		stack := func(suffix string, n int) func() ([]byte, error) {
			return func() ([]byte, error) {
				var all []float32
				for _, part := range []string{"query", "key", "value"} {
					v, err := src.get(p+"attention.self."+part+suffix, n)
					if err != nil {
						return nil, err
					}
					all = append(all, v...)
				}
				return encode(all, fp16), nil
			}
		}
		jobs = append(jobs, weightJob{dst: &lw.qkvW, conv: stack(".weight", H*H)}, weightJob{dst: &lw.qkvB, conv: stack(".bias", H)})
		for _, s := range []struct {
			dst  *devPtr
			name string
			n    int
			f32  bool
		}{
			{&lw.outW, "attention.output.dense.weight", H * H, false},
			{&lw.outB, "attention.output.dense.bias", H, false},
			{&lw.ln1G, "attention.output.LayerNorm.weight", H, true},
			{&lw.ln1B, "attention.output.LayerNorm.bias", H, true},
			{&lw.inW, "intermediate.dense.weight", I * H, false},
			{&lw.inB, "intermediate.dense.bias", I, false},
			{&lw.out2W, "output.dense.weight", H * I, false},
			{&lw.out2B, "output.dense.bias", H, false},
			{&lw.ln2G, "output.LayerNorm.weight", H, true},
			{&lw.ln2B, "output.LayerNorm.bias", H, true},
		} {
			if s.f32 {
				f32(s.dst, p+s.name, s.n)
			} else {
				act(s.dst, p+s.name, s.n)
			}
		}
	}
	// Convert on every core; the file stays mapped until all are done.
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range jobs {
		g.Go(func() error {
			b, err := jobs[i].conv()
			jobs[i].data, jobs[i].conv = b, nil
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return &hostWeights{w: w, jobs: jobs}, nil
}

// upload copies the converted tensors to the GPU of the current context.
func (h *hostWeights) upload() (*weights, error) {
	w := h.w
	for i := range h.jobs {
		j := &h.jobs[i]
		p, err := upload(j.data)
		if err != nil {
			w.free()
			return nil, err
		}
		w.all = append(w.all, p)
		w.bytes += int64(len(j.data))
		*j.dst = p
		j.data = nil
	}
	return w, nil
}
