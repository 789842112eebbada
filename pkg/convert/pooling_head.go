package convert

import (
	"errors"
	"fmt"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
	"github.com/m3ectl/m3ectl/pkg/engine"
)

// EmbeddingsOutput is the name of a pooled graph's output, [batch, hidden]
// float32: the name Triton configs and the article's client ask for.
const EmbeddingsOutput = "embeddings"

// headPrefix names the nodes AddPoolingHead writes, so that the fp16
// AutoCast keeps them in fp32 and inspect can tell m3ectl's head.
const headPrefix = "m3ectl.pooling/"

// ErrAlreadyPooled marks a graph whose output is already a sentence embedding.
var ErrAlreadyPooled = errors.New("the graph is already pooled")

// AddPoolingHead appends sentence-transformers' pooling to an encoder: the
// [batch, seq, hidden] output is pooled under the attention mask (mean:
// masked sum / token count clamped at 1e-9; cls: token 0; max: masked max
// with padding at -1e9, as sentence_transformers.models.Pooling does), then,
// with p.Normalize, divided by its L2 norm clamped at 1e-12
// (torch.nn.functional.normalize). The result becomes the graph's only
// output, "embeddings" [batch, hidden] float32; the other outputs and what
// only they needed are removed.
func AddPoolingHead(m *onnxpb.ModelProto, p engine.Pooling) error {
	return AddPoolingHeadOn(m, p, "")
}

// AddPoolingHeadOn is AddPoolingHead on the named output ("" picks the
// first [batch, seq, hidden] float output, as Report.HiddenStates does).
func AddPoolingHeadOn(m *onnxpb.ModelProto, p engine.Pooling, output string) error {
	g := m.GetGraph()
	rep, err := inspectModel(m, "model.onnx")
	if err != nil {
		return err
	}
	hidden, err := rep.HiddenStates()
	if output != "" {
		hidden, err = namedHiddenStates(rep, output)
	}
	if err != nil {
		if _, ok := rep.Embeddings(); ok && output == "" {
			return fmt.Errorf("%w: its output %q is [batch, hidden] already", ErrAlreadyPooled, EmbeddingsOutput)
		}
		return err
	}
	width := hidden.Shape[2]
	if !width.Known() && rep.Architecture != nil && rep.Architecture.Hidden > 0 {
		width = Dim{Value: int64(rep.Architecture.Hidden)}
	}
	mask := ""
	for _, in := range rep.Inputs {
		if strings.Contains(strings.ToLower(in.Name), "mask") {
			mask = in.Name
		}
	}
	if mask == "" && p.Mode != engine.PoolCLS {
		return fmt.Errorf("%s pooling needs the attention mask, and the graph has no input named like attention_mask (inputs: %v)", p.Mode, rep.Inputs)
	}
	renameTensor(g, EmbeddingsOutput, EmbeddingsOutput+"_m3ectl_renamed")
	b := newBuilder(g, defaultOpset(m), headPrefix)
	h := hidden.Name
	if h == EmbeddingsOutput {
		h = EmbeddingsOutput + "_m3ectl_renamed"
	}
	if hidden.DType != "float32" {
		h = b.cast(h, onnxpb.TensorProto_FLOAT)
	}
	var pooled string
	switch p.Mode {
	case engine.PoolCLS:
		pooled = b.node("Gather", []string{h, b.int64Scalar(0)}, intAttr1("axis", 1))
	case engine.PoolMax:
		m64 := b.unsqueeze(maskAsInt64(b, mask, rep), 2)
		pad := b.node("Equal", []string{m64, b.int64Scalar(0)})
		masked := b.node("Where", []string{pad, b.scalar(-1e9), h})
		pooled = b.reduce("ReduceMax", masked, false, 1)
	default:
		mf := b.unsqueeze(b.cast(mask, onnxpb.TensorProto_FLOAT), 2)
		sum := b.reduce("ReduceSum", b.node("Mul", []string{h, mf}), false, 1)
		count := b.node("Max", []string{b.reduce("ReduceSum", mf, false, 1), b.scalar(1e-9)})
		pooled = b.node("Div", []string{sum, count})
	}
	final := pooled
	if p.Normalize {
		norm := b.node("Sqrt", []string{b.reduce("ReduceSum", b.node("Mul", []string{pooled, pooled}), true, -1)})
		final = b.node("Div", []string{pooled, b.node("Max", []string{norm, b.scalar(1e-12)})})
	}
	b.nodeTo(EmbeddingsOutput, "Identity", []string{final})
	batch := hidden.Shape[0]
	if !batch.Known() && batch.Param == "" {
		batch = Dim{Param: "batch_size"}
	}
	g.Output = []*onnxpb.ValueInfoProto{tensorValue(EmbeddingsOutput, onnxpb.TensorProto_FLOAT, batch, width)}
	prune(g)
	return nil
}

// ErrNoSuchOutput marks an output name the graph does not have.
var ErrNoSuchOutput = errors.New("no such output")

func namedHiddenStates(rep *Report, name string) (ValueInfo, error) {
	var names []string
	for _, o := range rep.Outputs {
		if o.Name == name {
			if len(o.Shape) != 3 || (o.DType != "float32" && o.DType != "float16") {
				return ValueInfo{}, fmt.Errorf("output %q is %s %s, not [batch, seq, hidden] float; pool a hidden-state output", name, o.DType, FormatShape(o.Shape))
			}
			return o, nil
		}
		names = append(names, o.Name)
	}
	return ValueInfo{}, fmt.Errorf("%w %q; the graph's outputs are %s", ErrNoSuchOutput, name, strings.Join(names, ", "))
}

// maskAsInt64 returns the mask as int64 (a graph may take int32 ids).
func maskAsInt64(b *builder, mask string, rep *Report) string {
	for _, in := range rep.Inputs {
		if in.Name == mask && in.DType != "int64" {
			return b.cast(mask, onnxpb.TensorProto_INT64)
		}
	}
	return mask
}

// Embeddings returns the graph's pooled output: a 2-D float output named
// embeddings or sentence_embedding, or, in a graph with no 3-D float output,
// its only 2-D float output of fixed width. ok is false for an unpooled encoder.
func (r *Report) Embeddings() (ValueInfo, bool) {
	var twoD []ValueInfo
	for _, o := range r.Outputs {
		if (o.DType == "float32" || o.DType == "float16") && len(o.Shape) == 2 {
			n := strings.ToLower(o.Name)
			if n == EmbeddingsOutput || n == "sentence_embedding" {
				return o, true
			}
			if o.Shape[1].Known() {
				twoD = append(twoD, o) // [batch, hidden]: a fixed width, not a sequence
			}
		}
	}
	if _, err := r.HiddenStates(); err == nil || len(twoD) != 1 {
		return ValueInfo{}, false
	}
	return twoD[0], true
}

// renameTensor renames a tensor everywhere it appears (an internal tensor
// that happens to be called like the output m3ectl must write).
func renameTensor(g *onnxpb.GraphProto, from, to string) {
	for _, n := range g.GetNode() {
		for i, in := range n.Input {
			if in == from {
				n.Input[i] = to
			}
		}
		for i, out := range n.Output {
			if out == from {
				n.Output[i] = to
			}
		}
	}
	for _, t := range g.GetInitializer() {
		if t.Name == from {
			t.Name = to
		}
	}
	for _, vs := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, v := range vs {
			if v.Name == from {
				v.Name = to
			}
		}
	}
}

// prune removes the nodes, initializers and value_info entries no graph
// output depends on (a dropped pooler, the unpooled output's Identity).
// Graph inputs are kept: callers feed them whether or not they are used.
func prune(g *onnxpb.GraphProto) {
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	live := map[string]bool{}
	keep := map[*onnxpb.NodeProto]bool{}
	var stack []string
	for _, o := range g.GetOutput() {
		stack = append(stack, o.GetName())
	}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if live[t] {
			continue
		}
		live[t] = true
		if n := producer[t]; n != nil && !keep[n] {
			keep[n] = true
			stack = append(stack, n.GetInput()...)
			stack = append(stack, subgraphInputs(n)...)
		}
	}
	nodes := g.Node[:0]
	for _, n := range g.Node {
		if keep[n] {
			nodes = append(nodes, n)
		}
	}
	g.Node = nodes
	inits := g.Initializer[:0]
	for _, t := range g.Initializer {
		if live[t.GetName()] {
			inits = append(inits, t)
		}
	}
	g.Initializer = inits
	vis := g.ValueInfo[:0]
	for _, v := range g.ValueInfo {
		if live[v.GetName()] {
			vis = append(vis, v)
		}
	}
	g.ValueInfo = vis
}

// subgraphInputs lists the outer-scope names an If/Loop/Scan body reads.
func subgraphInputs(n *onnxpb.NodeProto) []string {
	var out []string
	for _, a := range n.GetAttribute() {
		for _, sg := range append([]*onnxpb.GraphProto{a.GetG()}, a.GetGraphs()...) {
			if sg == nil {
				continue
			}
			for _, sn := range sg.GetNode() {
				out = append(out, sn.GetInput()...)
				out = append(out, subgraphInputs(sn)...)
			}
		}
	}
	return out
}
