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

// tensor returns the named tensor, checking its element count.
func (s *weightSource) tensor(name string, want int) (*safetensors.Tensor, error) {
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
	return t, nil
}

// get returns the named tensor as float32, checking its element count.
func (s *weightSource) get(name string, want int) ([]float32, error) {
	t, err := s.tensor(name, want)
	if err != nil {
		return nil, err
	}
	return t.Float32()
}

// appendAct appends the named tensor in the activation type: fp16 straight
// from the stored bytes (a third of the old float32 detour's time on the
// 24 x 1024 model's 1.3 GB, and no float32 copy), or float32.
func (s *weightSource) appendAct(dst []byte, name string, want int, fp16 bool) ([]byte, error) {
	t, err := s.tensor(name, want)
	if err != nil {
		return nil, err
	}
	if fp16 {
		return t.HalfBytes(dst)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, err
	}
	return append(dst, encodeF32(v)...), nil
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
	dst  func(*weights) *devPtr // the field of an engine's weights it fills
	conv func() ([]byte, error)
	data []byte
}

// hostWeights are a checkpoint's tensors converted to the device layout in
// host memory, ready to upload.
type hostWeights struct {
	layers int
	jobs   []weightJob
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
	var jobs []weightJob
	add := func(dst func(*weights) *devPtr, conv func() ([]byte, error)) {
		jobs = append(jobs, weightJob{dst: dst, conv: conv})
	}
	act := func(dst func(*weights) *devPtr, name string, n int) {
		add(dst, func() ([]byte, error) { return src.appendAct(nil, name, n, fp16) })
	}
	f32 := func(dst func(*weights) *devPtr, name string, n int) {
		add(dst, func() ([]byte, error) {
			v, err := src.get(name, n)
			if err != nil {
				return nil, err
			}
			return encodeF32(v), nil
		})
	}
	H, I := c.Hidden, c.Intermediate
	act(func(w *weights) *devPtr { return &w.word }, "embeddings.word_embeddings.weight", c.Vocab*H)
	act(func(w *weights) *devPtr { return &w.pos }, "embeddings.position_embeddings.weight", c.MaxPos*H)
	add(func(w *weights) *devPtr { return &w.type0 }, func() ([]byte, error) {
		tt := src.f.Tensor(src.prefix + "embeddings.token_type_embeddings.weight")
		if tt == nil || tt.Elements() < H {
			return nil, fmt.Errorf("weight embeddings.token_type_embeddings.weight missing")
		}
		tv, err := tt.Float32()
		if err != nil {
			return nil, err
		}
		return encode(tv[:H], fp16), nil
	})
	f32(func(w *weights) *devPtr { return &w.embG }, "embeddings.LayerNorm.weight", H)
	f32(func(w *weights) *devPtr { return &w.embB }, "embeddings.LayerNorm.bias", H)
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		stack := func(suffix string, n int) func() ([]byte, error) {
			return func() ([]byte, error) {
				all := make([]byte, 0, 3*n*4)
				for _, part := range []string{"query", "key", "value"} {
					var err error
					if all, err = src.appendAct(all, p+"attention.self."+part+suffix, n, fp16); err != nil {
						return nil, err
					}
				}
				return all, nil
			}
		}
		lw := func(f func(*layerWeights) *devPtr) func(*weights) *devPtr {
			return func(w *weights) *devPtr { return f(&w.layers[l]) }
		}
		add(lw(func(x *layerWeights) *devPtr { return &x.qkvW }), stack(".weight", H*H))
		add(lw(func(x *layerWeights) *devPtr { return &x.qkvB }), stack(".bias", H))
		for _, s := range []struct {
			dst  func(*layerWeights) *devPtr
			name string
			n    int
			f32  bool
		}{
			{func(x *layerWeights) *devPtr { return &x.outW }, "attention.output.dense.weight", H * H, false},
			{func(x *layerWeights) *devPtr { return &x.outB }, "attention.output.dense.bias", H, false},
			{func(x *layerWeights) *devPtr { return &x.ln1G }, "attention.output.LayerNorm.weight", H, true},
			{func(x *layerWeights) *devPtr { return &x.ln1B }, "attention.output.LayerNorm.bias", H, true},
			{func(x *layerWeights) *devPtr { return &x.inW }, "intermediate.dense.weight", I * H, false},
			{func(x *layerWeights) *devPtr { return &x.inB }, "intermediate.dense.bias", I, false},
			{func(x *layerWeights) *devPtr { return &x.out2W }, "output.dense.weight", H * I, false},
			{func(x *layerWeights) *devPtr { return &x.out2B }, "output.dense.bias", H, false},
			{func(x *layerWeights) *devPtr { return &x.ln2G }, "output.LayerNorm.weight", H, true},
			{func(x *layerWeights) *devPtr { return &x.ln2B }, "output.LayerNorm.bias", H, true},
		} {
			if s.f32 {
				f32(lw(s.dst), p+s.name, s.n)
			} else {
				act(lw(s.dst), p+s.name, s.n)
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
	return &hostWeights{layers: c.Layers, jobs: jobs}, nil
}

// upload copies the converted tensors to the GPU of the current context:
// one device allocation for all of them (each tensor at a 256-byte
// boundary, as cuMemAlloc's own), filled through two pinned staging
// buffers whose copies overlap the memcpy into the other one. h is left
// as it was, so engines opening together upload from one conversion.
func (h *hostWeights) upload() (*weights, error) {
	w := &weights{layers: make([]layerWeights, h.layers)}
	offs := make([]int, len(h.jobs))
	total := 0
	for i := range h.jobs {
		offs[i] = total
		total += (len(h.jobs[i].data) + 255) &^ 255
	}
	base, err := memAlloc(total)
	if err != nil {
		return nil, err
	}
	w.all = []devPtr{base}
	for i := range h.jobs {
		*h.jobs[i].dst(w) = base + devPtr(offs[i])
		w.bytes += int64(len(h.jobs[i].data))
	}
	if err := stagedCopy(base, total, func(yield func(off int, b []byte) error) error {
		for i := range h.jobs {
			if err := yield(offs[i], h.jobs[i].data); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		w.free()
		return nil, err
	}
	return w, nil
}
