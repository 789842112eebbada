package convert

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/engine/checkpoint"
)

// DefaultOpset is what export writes unless told otherwise: opset 17 has
// LayerNormalization, which TensorRT parses from 8.6 on.
const DefaultOpset = 17

// ExportOptions says what `m3ectl export` writes.
type ExportOptions struct {
	Out string // the .onnx file to write; the tokenizer files go beside it
	// Pooling is "auto" (or ""): the folder's modules.json and 1_Pooling
	// (m3e-base's mean + Normalize when it has none); "none": the graph ends
	// at last_hidden_state; "mean", "cls", "max": that pooling.
	Pooling string
	// Normalize L2-normalises the pooled vector; nil takes the folder's
	// Normalize module (true for a folder without modules.json).
	Normalize    *bool
	Opset        int64 // 0 = DefaultOpset; below 17 LayerNorm is written decomposed
	TokenTypeIDs bool  // add a token_type_ids input (else type 0 is folded in)
	ExternalData bool  // weights in Out+".data" (automatic above 2 GB)
}

// ExportResult describes the written graph.
type ExportResult struct {
	Path         string         `json:"path"`                    // the .onnx written
	ExternalData string         `json:"external_data,omitempty"` // the .onnx.data written, or ""
	Weights      string         `json:"weights"`                 // the checkpoint read
	Output       string         `json:"output"`                  // "embeddings" or "last_hidden_state"
	Pooled       bool           `json:"pooled"`                  // the graph pools and (per Pooling) normalises
	Pooling      engine.Pooling `json:"-"`                       // the pooling written, when Pooled
	PoolingMode  string         `json:"pooling,omitempty"`       // Pooling.Mode's name, when Pooled
	Normalize    bool           `json:"normalize,omitempty"`     // Pooling.Normalize, when Pooled
	Opset        int64          `json:"opset"`
	Copied       []string       `json:"copied"` // tokenizer files copied beside Path
}

// bertConfig is the encoder shape read from config.json.
type bertConfig struct {
	layers, hidden, heads, inter, vocab, positions, types int
	eps                                                   float32
	act                                                   string
}

// Export reads a Hugging Face / sentence-transformers BERT folder
// (config.json plus model.safetensors in fp32, fp16 or bf16, or
// pytorch_model.bin) and writes it as an ONNX encoder graph: inputs
// input_ids and attention_mask (int64 [batch_size, max_seq_len]), output
// last_hidden_state [batch_size, max_seq_len, hidden] or, with a pooling,
// embeddings [batch_size, hidden]. Weights are stored in fp32 whatever the
// checkpoint's type. Nothing is left behind on failure.
func Export(dir string, o ExportOptions) (*ExportResult, error) {
	if o.Out == "" {
		return nil, errors.New("export: no output file given (--out MODEL.onnx)")
	}
	if o.Opset == 0 {
		o.Opset = DefaultOpset
	}
	if o.Opset < 11 || o.Opset > 21 {
		return nil, fmt.Errorf("export: opset %d is not written; use 11 to 21 (17 and up write LayerNormalization)", o.Opset)
	}
	m, err := engine.ResolveModel(dir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if m.Weights == "" {
		return nil, fmt.Errorf("export: %s has no model.safetensors or pytorch_model.bin", dir)
	}
	if m.HFConfig == "" {
		return nil, fmt.Errorf("export: %s has no config.json", dir)
	}
	pool, pooled, err := exportPooling(m, o)
	if err != nil {
		return nil, err
	}
	cfg, err := readBertConfig(m.HFConfig)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	f, err := checkpoint.Open(m.Weights)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	w, err := checkpoint.NewBERT(f)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w", m.Weights, err)
	}
	model, err := buildBERT(w, cfg, o)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w", m.Weights, err)
	}
	res := &ExportResult{Path: o.Out, Weights: m.Weights, Output: "last_hidden_state", Opset: o.Opset}
	if pooled {
		if err := AddPoolingHead(model, pool); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		res.Output, res.Pooled, res.Pooling = EmbeddingsOutput, true, pool
		res.PoolingMode, res.Normalize = pool.Mode.String(), pool.Normalize
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if res.ExternalData, err = WriteModel(o.Out, model, WriteOptions{ExternalData: o.ExternalData}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if res.Copied, err = copyTokenizer(m, filepath.Dir(o.Out)); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return res, nil
}

// exportPooling decides the head: auto follows the folder.
func exportPooling(m *engine.Model, o ExportOptions) (engine.Pooling, bool, error) {
	p := m.Pooling
	switch strings.ToLower(o.Pooling) {
	case "", "auto":
	case "none":
		return p, false, nil
	default:
		mode, err := engine.ParsePoolingMode(o.Pooling)
		if err != nil {
			return p, false, fmt.Errorf("export: %w (or auto, none)", err)
		}
		p.Mode = mode
	}
	if o.Normalize != nil {
		p.Normalize = *o.Normalize
	}
	return p, true, nil
}

func readBertConfig(path string) (bertConfig, error) {
	hc, err := engine.ReadHFConfig(path)
	if err != nil {
		return bertConfig{}, err
	}
	c := bertConfig{layers: hc.NumHiddenLayers, hidden: hc.HiddenSize, heads: hc.NumAttentionHeads, inter: hc.IntermediateSize,
		vocab: hc.VocabSize, positions: hc.MaxPositionEmbeddings, types: hc.TypeVocabSize, eps: float32(hc.LayerNormEps), act: strings.ToLower(hc.HiddenAct)}
	if c.eps == 0 {
		c.eps = 1e-12
	}
	if c.act == "" {
		c.act = "gelu"
	}
	switch hc.ModelType {
	case "", "bert", "roberta", "xlm-roberta":
	default:
		return c, fmt.Errorf("%s: model_type %q: export writes BERT encoders only", path, hc.ModelType)
	}
	if hc.ModelType == "roberta" || hc.ModelType == "xlm-roberta" {
		return c, fmt.Errorf("%s: model_type %q: RoBERTa's position ids start after the padding id, which export does not write; only BERT is supported", path, hc.ModelType)
	}
	switch c.act {
	case "gelu", "gelu_new", "gelu_pytorch_tanh", "relu":
	default:
		return c, fmt.Errorf("%s: hidden_act %q is not written (gelu, gelu_new, gelu_pytorch_tanh, relu)", path, hc.HiddenAct)
	}
	if c.layers <= 0 || c.hidden <= 0 || c.heads <= 0 || c.inter <= 0 || c.hidden%c.heads != 0 || c.vocab <= 0 || c.positions <= 0 {
		return c, fmt.Errorf("%s: incomplete BERT config (layers %d, hidden %d, heads %d, intermediate %d, vocab %d, positions %d)",
			path, c.layers, c.hidden, c.heads, c.inter, c.vocab, c.positions)
	}
	return c, nil
}

// exporter writes one BERT encoder graph.
type exporter struct {
	*builder
	w   *checkpoint.BERT
	cfg bertConfig
	err error
}

// weight stores a checkpoint tensor as an fp32 initializer; transposed
// ([out, in] → [in, out]) for the MatMul of a Linear layer.
func (e *exporter) weight(name string, transpose bool, shape ...int) string {
	if e.err != nil {
		return ""
	}
	v, err := e.w.Float32(name, shape...)
	if err != nil {
		e.err = err
		return ""
	}
	dims := []int64{}
	for _, d := range shape {
		dims = append(dims, int64(d))
	}
	if transpose {
		rows, cols := shape[0], shape[1]
		t := make([]float32, len(v))
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				t[c*rows+r] = v[r*cols+c]
			}
		}
		v, dims, name = t, []int64{int64(cols), int64(rows)}, name+".T"
	}
	return e.floats(name, dims, v)
}

func (e *exporter) linear(x, prefix string, in, out int) string {
	w := e.weight(prefix+".weight", true, out, in)
	bias := e.weight(prefix+".bias", false, out)
	return e.node("Add", []string{e.node("MatMul", []string{x, w}), bias})
}

func (e *exporter) layerNorm(x, prefix string) string {
	H := e.cfg.hidden
	gamma, beta := e.weight(prefix+".weight", false, H), e.weight(prefix+".bias", false, H)
	if e.opset >= 17 {
		return e.node("LayerNormalization", []string{x, gamma, beta}, intAttr1("axis", -1), floatAttr("epsilon", e.cfg.eps))
	}
	// The chain torch.onnx writes for LayerNorm before opset 17.
	mean := e.reduce("ReduceMean", x, true, -1)
	d := e.node("Sub", []string{x, mean})
	v := e.reduce("ReduceMean", e.node("Pow", []string{d, e.scalar(2)}), true, -1)
	y := e.node("Div", []string{d, e.node("Sqrt", []string{e.node("Add", []string{v, e.scalar(e.cfg.eps)})})})
	return e.node("Add", []string{e.node("Mul", []string{y, gamma}), beta})
}

func (e *exporter) activation(x string) string {
	switch e.cfg.act {
	case "relu":
		return e.node("Relu", []string{x})
	case "gelu_new", "gelu_pytorch_tanh":
		// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
		x3 := e.node("Mul", []string{e.node("Mul", []string{x, x}), x})
		inner := e.node("Mul", []string{e.node("Add", []string{x, e.node("Mul", []string{x3, e.scalar(0.044715)})}), e.scalar(float32(math.Sqrt(2 / math.Pi)))})
		return e.node("Mul", []string{e.node("Mul", []string{x, e.scalar(0.5)}), e.node("Add", []string{e.node("Tanh", []string{inner}), e.scalar(1)})})
	default:
		// BERT's exact gelu: 0.5·x·(1 + erf(x/√2)).
		erf := e.node("Erf", []string{e.node("Div", []string{x, e.scalar(float32(math.Sqrt2))})})
		return e.node("Mul", []string{e.node("Mul", []string{x, e.scalar(0.5)}), e.node("Add", []string{erf, e.scalar(1)})})
	}
}

// buildBERT writes the encoder in the form torch.onnx.export gives a
// BertModel (unfused MatMul/Softmax attention), so every ONNX consumer —
// ONNX Runtime, TensorRT's parser, m3ectl inspect — reads it as it reads the
// article's export.
func buildBERT(w *checkpoint.BERT, c bertConfig, o ExportOptions) (*onnxpb.ModelProto, error) {
	g := &onnxpb.GraphProto{Name: "bert"}
	batch, seq := Dim{Param: "batch_size"}, Dim{Param: "max_seq_len"}
	g.Input = []*onnxpb.ValueInfoProto{
		tensorValue("input_ids", onnxpb.TensorProto_INT64, batch, seq),
		tensorValue("attention_mask", onnxpb.TensorProto_INT64, batch, seq),
	}
	if o.TokenTypeIDs {
		g.Input = append(g.Input, tensorValue("token_type_ids", onnxpb.TensorProto_INT64, batch, seq))
	}
	e := &exporter{builder: newBuilder(g, o.Opset, ""), w: w, cfg: c}
	H, heads := c.hidden, c.heads
	dh := H / heads

	word := e.node("Gather", []string{e.weight("embeddings.word_embeddings.weight", false, c.vocab, H), "input_ids"})
	// Position ids 0..seq-1 (torch's position_ids buffer, sliced to the length).
	seqLen := e.node("Gather", []string{e.node("Shape", []string{"input_ids"}), e.int64Scalar(1)})
	positions := e.node("Range", []string{e.int64Scalar(0), seqLen, e.int64Scalar(1)})
	pos := e.node("Gather", []string{e.weight("embeddings.position_embeddings.weight", false, c.positions, H), positions})
	x := e.node("Add", []string{word, pos})
	if tt := w.Tensor("embeddings.token_type_embeddings.weight"); tt != nil && len(tt.Shape) == 2 {
		types := e.weight("embeddings.token_type_embeddings.weight", false, tt.Shape[0], H)
		if o.TokenTypeIDs {
			x = e.node("Add", []string{x, e.node("Gather", []string{types, "token_type_ids"})})
		} else {
			// One sentence: every token has type 0, so row 0 is a constant.
			x = e.node("Add", []string{x, e.node("Gather", []string{types, e.int64Scalar(0)})})
		}
	} else if o.TokenTypeIDs {
		return nil, errors.New("--token-type-ids: the checkpoint has no token_type_embeddings")
	}
	x = e.layerNorm(x, "embeddings.LayerNorm")

	// Additive attention mask [batch, 1, 1, seq]: 0 for tokens, -10000 for
	// padding (BERT's original constant; it stays finite in fp16).
	maskF := e.cast("attention_mask", onnxpb.TensorProto_FLOAT)
	bias := e.node("Mul", []string{e.node("Sub", []string{e.scalar(1), maskF}), e.scalar(-10000)})
	bias = e.unsqueeze(bias, 1, 2)
	headShape := e.int64s(0, 0, int64(heads), int64(dh))
	mergeShape := e.int64s(0, 0, int64(H))
	scale := e.scalar(float32(math.Sqrt(float64(dh))))
	for l := 0; l < c.layers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		split := func(t string, perm ...int64) string {
			return e.node("Transpose", []string{e.node("Reshape", []string{t, headShape})}, intsAttr1("perm", perm...))
		}
		q := split(e.linear(x, p+"attention.self.query", H, H), 0, 2, 1, 3)
		k := split(e.linear(x, p+"attention.self.key", H, H), 0, 2, 3, 1)
		v := split(e.linear(x, p+"attention.self.value", H, H), 0, 2, 1, 3)
		scores := e.node("Add", []string{e.node("Div", []string{e.node("MatMul", []string{q, k}), scale}), bias})
		probs := e.node("Softmax", []string{scores}, intAttr1("axis", -1))
		ctx := e.node("Transpose", []string{e.node("MatMul", []string{probs, v})}, intsAttr1("perm", 0, 2, 1, 3))
		ctx = e.node("Reshape", []string{ctx, mergeShape})
		x = e.layerNorm(e.node("Add", []string{e.linear(ctx, p+"attention.output.dense", H, H), x}), p+"attention.output.LayerNorm")
		h := e.activation(e.linear(x, p+"intermediate.dense", H, c.inter))
		x = e.layerNorm(e.node("Add", []string{e.linear(h, p+"output.dense", c.inter, H), x}), p+"output.LayerNorm")
	}
	if e.err != nil {
		return nil, e.err
	}
	e.nodeTo("last_hidden_state", "Identity", []string{x})
	g.Output = []*onnxpb.ValueInfoProto{tensorValue("last_hidden_state", onnxpb.TensorProto_FLOAT, batch, seq, Dim{Value: int64(H)})}
	return &onnxpb.ModelProto{
		IrVersion:       irVersionFor(o.Opset),
		ProducerName:    "m3ectl",
		ProducerVersion: "export",
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: "", Version: o.Opset}},
		Graph:           g,
	}, nil
}

// irVersionFor is the lowest IR version that carries an opset (onnx's
// VERSION_TABLE), so older parsers that check the IR version accept it.
func irVersionFor(opset int64) int64 {
	switch {
	case opset <= 11:
		return 6
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	default:
		return 10
	}
}

// tokenizerFiles are what tokenizer.Load and the serve/build steps look
// for beside a model.
var tokenizerFiles = []string{"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}

// copyTokenizer copies the folder's tokenizer files next to the export
// (a no-op when the export is written into the folder itself).
func copyTokenizer(m *engine.Model, outDir string) ([]string, error) {
	src := m.Tokenizer
	if src == "" {
		return nil, nil
	}
	if st, err := os.Stat(src); err == nil && !st.IsDir() {
		src = filepath.Dir(src)
	}
	var copied []string
	for _, n := range tokenizerFiles {
		from, to := filepath.Join(src, n), filepath.Join(outDir, n)
		data, err := os.ReadFile(from)
		if err != nil {
			continue
		}
		if same, _ := sameFile(from, to); same {
			continue
		}
		if err := writeFileAtomic(to, data); err != nil {
			return copied, err
		}
		copied = append(copied, to)
	}
	return copied, nil
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
