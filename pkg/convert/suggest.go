package convert

// The shape profile m3ectl suggests mirrors the article's trtexec call
// (--minShapes 1x1, --optShapes 16x128, --maxShapes 64x512): one sentence of
// one token up to a batch of 64 at the model's full window, tuned for a
// batch of 16 medium sentences.
const (
	suggestOptBatch = 16
	suggestOptSeq   = 128
	suggestMaxBatch = 64
	// fallbackSeq is the window assumed when the graph shows no position table.
	fallbackSeq = 512
)

// suggestProfile proposes min/opt/max shapes for every dynamic [batch, seq]
// input; nil when the graph has none (or has dynamic inputs of another
// rank, which need a person's choice).
func suggestProfile(r *Report) *Profile {
	maxSeq := int64(fallbackSeq)
	if r.Architecture != nil && r.Architecture.MaxPositions > 0 {
		maxSeq = int64(r.Architecture.MaxPositions)
	}
	optSeq := min(int64(suggestOptSeq), maxSeq)
	p := &Profile{Min: map[string][]int64{}, Opt: map[string][]int64{}, Max: map[string][]int64{}}
	for _, in := range r.Inputs {
		dynamic := false
		for _, d := range in.Shape {
			dynamic = dynamic || !d.Known()
		}
		if !dynamic {
			continue
		}
		if len(in.Shape) != 2 {
			return nil
		}
		shape := func(b, s int64) []int64 {
			out := []int64{b, s}
			for i, d := range in.Shape {
				if d.Known() {
					out[i] = d.Value
				}
			}
			return out
		}
		p.Min[in.Name] = shape(1, 1)
		p.Opt[in.Name] = shape(suggestOptBatch, optSeq)
		p.Max[in.Name] = shape(suggestMaxBatch, maxSeq)
	}
	if len(p.Min) == 0 {
		return nil
	}
	return p
}
