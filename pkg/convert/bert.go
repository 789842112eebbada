package convert

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// graphIndex is the wiring of a graph: who produces and who consumes each
// value, the dims of every initializer and the small constants.
type graphIndex struct {
	g         *onnxpb.GraphProto
	producer  map[string]*onnxpb.NodeProto
	consumers map[string][]*onnxpb.NodeProto
	inits     map[string]*onnxpb.TensorProto
	consts    constants
}

func newGraphIndex(g *onnxpb.GraphProto) *graphIndex {
	x := &graphIndex{
		g:         g,
		producer:  map[string]*onnxpb.NodeProto{},
		consumers: map[string][]*onnxpb.NodeProto{},
		inits:     map[string]*onnxpb.TensorProto{},
		consts:    graphConstants(g),
	}
	for _, t := range g.GetInitializer() {
		x.inits[t.GetName()] = t
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			x.producer[o] = n
		}
		for _, in := range n.GetInput() {
			x.consumers[in] = append(x.consumers[in], n)
		}
	}
	return x
}

// weight2D returns the dims of a 2-D weight initializer named name.
func (x *graphIndex) weight2D(name string) (rows, cols int64, ok bool) {
	t, found := x.inits[name]
	if !found || len(t.GetDims()) != 2 || !isFloat(t.GetDataType()) {
		return 0, 0, false
	}
	return t.GetDims()[0], t.GetDims()[1], true
}

// embeddingTable is a 2-D initializer read by a Gather: an embedding lookup.
type embeddingTable struct {
	name       string
	rows, cols int64
	byInput    bool   // indexed straight from a graph input (maybe through a Cast)
	role       string // "word_embeddings", ... when a fused op says so
}

// detectBERT recognises a BERT-family encoder: embedding tables (word,
// position, token type) looked up by Gather, followed by attention blocks.
// Each figure comes from the graph's structure first and from the
// Hugging Face initializer names second, so anonymous exports
// ("onnx::MatMul_123", "val_81") and fused ones are both understood.
// It returns nil when the graph has no word-embedding table.
func detectBERT(g *onnxpb.GraphProto, r *Report) *Architecture {
	x := newGraphIndex(g)
	tables := x.embeddingTables(r)
	word, ok := pickWordTable(tables)
	if !ok {
		return nil
	}
	a := &Architecture{Type: "bert", Hidden: int(word.cols), VocabSize: int(word.rows)}
	a.MaxPositions = positionRows(tables, word)
	a.Layers = x.layers()
	a.Intermediate = x.intermediate(word.cols)
	a.Heads = x.heads(word.cols)
	return a
}

// minPositions is the fewest rows an unnamed table needs to be taken for a
// position table rather than a token-type table (which has 2).
const minPositions = 32

// positionRows finds the position-embedding table beside the word table: by
// name or fused-op role, else the largest other table of the same width.
func positionRows(tables []embeddingTable, word embeddingTable) int {
	best := 0
	for _, t := range tables {
		if t.name == word.name || t.cols != word.cols {
			continue
		}
		if t.role == "position_embeddings" || strings.Contains(t.name, "position_embeddings") {
			return int(t.rows)
		}
		if t.role == "" && !strings.Contains(t.name, "token_type") && t.rows >= minPositions && int(t.rows) > best {
			best = int(t.rows)
		}
	}
	return best
}

// embeddingTables lists the Gather lookups into 2-D float initializers.
func (x *graphIndex) embeddingTables(r *Report) []embeddingTable {
	inputs := map[string]bool{}
	for _, in := range r.Inputs {
		inputs[in.Name] = true
	}
	seen := map[string]bool{}
	var out []embeddingTable
	for _, n := range x.g.GetNode() {
		// ONNX Runtime's optimiser fuses the lookups and their LayerNorm into
		// EmbedLayerNormalization(input_ids, segment_ids, word, position, segment, ...).
		if n.GetOpType() == "EmbedLayerNormalization" && len(n.GetInput()) >= 4 {
			for i, role := range []string{"word_embeddings", "position_embeddings", "token_type_embeddings"} {
				if i+2 >= len(n.GetInput()) || seen[n.GetInput()[i+2]] {
					continue
				}
				if rows, cols, ok := x.weight2D(n.GetInput()[i+2]); ok {
					seen[n.GetInput()[i+2]] = true
					out = append(out, embeddingTable{name: n.GetInput()[i+2], rows: rows, cols: cols, role: role})
				}
			}
			continue
		}
		if n.GetOpType() != "Gather" || len(n.GetInput()) != 2 || seen[n.GetInput()[0]] {
			continue
		}
		rows, cols, ok := x.weight2D(n.GetInput()[0])
		if !ok {
			continue
		}
		seen[n.GetInput()[0]] = true
		idx := n.GetInput()[1]
		if p := x.producer[idx]; p != nil && p.GetOpType() == "Cast" && len(p.GetInput()) == 1 {
			idx = p.GetInput()[0]
		}
		out = append(out, embeddingTable{name: n.GetInput()[0], rows: rows, cols: cols, byInput: inputs[idx]})
	}
	return out
}

// pickWordTable chooses the word-embedding table: by its Hugging Face name,
// else the table indexed by input_ids, else the largest.
func pickWordTable(tables []embeddingTable) (embeddingTable, bool) {
	for _, t := range tables {
		if t.role == "word_embeddings" || strings.Contains(t.name, "word_embeddings") {
			return t, true
		}
	}
	var best embeddingTable
	for _, t := range tables {
		if t.byInput && (!best.byInput || t.rows > best.rows) || !best.byInput && t.rows > best.rows {
			best = t
		}
	}
	return best, best.name != ""
}

var layerIndex = regexp.MustCompile(`(?:^|[./_])layers?[._](\d+)[./_]`)

// layers counts the attention blocks: Softmax nodes, else fused attention
// ops, else the layer indices in initializer names, else LayerNorms (two
// per layer plus the embeddings').
func (x *graphIndex) layers() int {
	softmax, fused, layerNorms := 0, 0, 0
	for _, n := range x.g.GetNode() {
		switch n.GetOpType() {
		case "Softmax":
			softmax++
		case "Attention", "MultiHeadAttention", "PackedAttention":
			fused++
		case "LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization":
			layerNorms++
		}
	}
	if softmax > 0 {
		return softmax
	}
	if fused > 0 {
		return fused
	}
	maxIdx := -1
	for name := range x.inits {
		if m := layerIndex.FindStringSubmatch(name); m != nil {
			if i, err := strconv.Atoi(m[1]); err == nil && i < 1<<20 && i > maxIdx {
				maxIdx = i
			}
		}
	}
	if maxIdx >= 0 {
		return maxIdx + 1
	}
	if layerNorms >= 3 {
		return (layerNorms - 1) / 2
	}
	return 0
}

// intermediate finds the feed-forward width: the most common X among MatMul
// weights [hidden, X] (Gemm with transB: [X, hidden]) other than hidden
// and 3·hidden (a fused QKV projection); else the intermediate bias's size.
func (x *graphIndex) intermediate(hidden int64) int {
	votes := map[int64]int{}
	for _, n := range x.g.GetNode() {
		if len(n.GetInput()) < 2 {
			continue
		}
		rows, cols, ok := x.weight2D(n.GetInput()[1])
		if !ok {
			continue
		}
		width := int64(0)
		switch {
		case n.GetOpType() == "MatMul" && rows == hidden:
			width = cols
		case n.GetOpType() == "Gemm" && intAttr(n, "transB") == 1 && cols == hidden:
			width = rows
		case n.GetOpType() == "Gemm" && rows == hidden:
			width = cols
		}
		if width > 0 && width != hidden && width != 3*hidden {
			votes[width]++
		}
	}
	if w := mostVoted(votes); w > 0 {
		return int(w)
	}
	for name, t := range x.inits {
		if strings.HasSuffix(name, "intermediate.dense.bias") && len(t.GetDims()) == 1 {
			return int(t.GetDims()[0])
		}
	}
	return 0
}

// heads finds the number of attention heads: a fused op's num_heads
// attribute, else the [.., heads, head_dim] target of the Reshapes that
// split Q/K/V, else the attention scale 1/sqrt(head_dim).
func (x *graphIndex) heads(hidden int64) int {
	for _, n := range x.g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.GetName() == "num_heads" && a.GetI() > 0 && a.GetI() <= hidden {
				return int(a.GetI())
			}
		}
	}
	votes := map[int64]int{}
	for _, n := range x.g.GetNode() {
		if n.GetOpType() == "Reshape" && len(n.GetInput()) == 2 {
			if h := headsFromShape(x.shapeValues(n.GetInput()[1]), hidden); h > 0 {
				votes[h]++
			}
		}
	}
	if h := mostVoted(votes); h > 0 {
		return int(h)
	}
	if d := x.headDimFromScale(hidden); d > 0 {
		return int(hidden / d)
	}
	return 0
}

// unknownDim stands for a reshape target entry computed at run time.
const unknownDim = math.MinInt64

// shapeValues resolves a Reshape target: a constant, or a Concat of
// constants and run-time values (the batch and sequence sizes).
func (x *graphIndex) shapeValues(name string) []int64 {
	if v, ok := x.consts.ints(name); ok {
		return v
	}
	p := x.producer[name]
	if p == nil || p.GetOpType() != "Concat" {
		return nil
	}
	var out []int64
	for _, in := range p.GetInput() {
		v, ok := x.consts.ints(in)
		if !ok {
			if q := x.producer[in]; q != nil && q.GetOpType() == "Unsqueeze" && len(q.GetInput()) >= 1 {
				v, ok = x.consts.ints(q.GetInput()[0])
			}
		}
		switch {
		case ok && len(v) >= 1:
			out = append(out, v...)
		default:
			out = append(out, unknownDim) // a run-time scalar, unsqueezed to one element
		}
		if len(out) > 8 {
			return nil
		}
	}
	return out
}

// headsFromShape reads heads from a 4-D [batch, seq, heads, head_dim]
// target where heads·head_dim = hidden (either may be -1).
func headsFromShape(s []int64, hidden int64) int64 {
	if len(s) != 4 {
		return 0
	}
	h, d := s[2], s[3]
	switch {
	case h > 0 && d > 0 && h*d == hidden && d > 1:
		return h
	case h == -1 && d > 1 && hidden%d == 0:
		return hidden / d
	case d == -1 && h > 0 && hidden%h == 0 && h < hidden:
		return h
	}
	return 0
}

// headDimFromScale walks back from each Softmax to the Mul or Div by a
// constant that scales the attention scores: applied to Q·Kᵀ (a MatMul
// output) it is 1/sqrt(head_dim); applied to Q and K separately, as
// scaled_dot_product_attention exports do, it is head_dim^-1/4 on each.
func (x *graphIndex) headDimFromScale(hidden int64) int64 {
	const maxDepth = 8
	type step struct {
		value string
		depth int
	}
	var split int64
	for _, sm := range x.g.GetNode() {
		if sm.GetOpType() != "Softmax" || len(sm.GetInput()) == 0 {
			continue
		}
		queue := []step{{sm.GetInput()[0], 0}}
		seen := map[string]bool{}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			p := x.producer[s.value]
			if p == nil || seen[s.value] || s.depth > maxDepth {
				continue
			}
			seen[s.value] = true
			if op := p.GetOpType(); (op == "Mul" || op == "Div") && len(p.GetInput()) == 2 {
				for i, in := range p.GetInput() {
					c, ok := x.scaleConstant(in)
					if !ok {
						continue
					}
					other := x.producer[p.GetInput()[1-i]]
					if op == "Div" && i == 0 {
						continue // const / x is not a scale
					}
					if other != nil && other.GetOpType() == "MatMul" {
						if d := headDim(op, c, 2, hidden); d > 0 {
							return d
						}
					} else if d := headDim(op, c, 4, hidden); d > 0 && split == 0 {
						split = d
					}
				}
			}
			for _, in := range p.GetInput() {
				queue = append(queue, step{in, s.depth + 1})
			}
		}
	}
	return split
}

// scaleConstant reads a scalar float constant, or the square root of one.
func (x *graphIndex) scaleConstant(name string) (float64, bool) {
	if c, ok := x.consts.scalar(name); ok {
		return c, true
	}
	if p := x.producer[name]; p != nil && p.GetOpType() == "Sqrt" && len(p.GetInput()) == 1 {
		if c, ok := x.consts.scalar(p.GetInput()[0]); ok && c >= 0 {
			return math.Sqrt(c), true
		}
	}
	return 0, false
}

// headDim turns a scale c applied by op into head_dim, where the scale is
// head_dim^(±1/power); 0 unless the result is a whole divisor of hidden.
func headDim(op string, c float64, power float64, hidden int64) int64 {
	if c <= 0 || math.IsInf(c, 0) || math.IsNaN(c) {
		return 0
	}
	d := math.Pow(c, power)
	if op == "Mul" {
		d = 1 / d
	}
	r := math.Round(d)
	if r < 2 || r > float64(hidden) || math.Abs(d-r) > 1e-3*r {
		return 0
	}
	if hidden%int64(r) != 0 {
		return 0
	}
	return int64(r)
}

// intAttr returns an integer attribute of a node, 0 when absent.
func intAttr(n *onnxpb.NodeProto, name string) int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return 0
}

// mostVoted returns the key with the most votes (the smallest on a tie, so
// the answer does not depend on map order); 0 for no votes.
func mostVoted(votes map[int64]int) int64 {
	keys := make([]int64, 0, len(votes))
	for k := range votes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var best int64
	for _, k := range keys {
		if best == 0 || votes[k] > votes[best] {
			best = k
		}
	}
	return best
}
