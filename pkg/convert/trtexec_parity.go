package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// parityInputs is the padded batch both runtimes see.
type parityInputs struct {
	names  []string
	dtypes []string // engine dtypes
	batch  int
	seq    int
	values map[string][]int64 // name → batch*seq values
	mask   []int64            // attention mask, batch*seq
}

func runParity(ctx context.Context, trtexec string, ver TRTVersion, meta *EngineMeta, res *VerifyResult, req VerifyRequest) (*Parity, []Binding, error) {
	rep, err := Inspect(req.ONNX)
	if err != nil {
		return nil, nil, fmt.Errorf("inspect %s: %w", req.ONNX, err)
	}
	refONNX := req.ONNX
	dir := req.WorkDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "m3ectl-verify-"); err != nil {
			return nil, nil, fmt.Errorf("work folder: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	if meta != nil && meta.Pooled && meta.Pooling != "" && !rep.Pooled {
		// The engine pools (build-engine --pooling); compare it with the
		// given fp32 graph under the same head.
		refONNX = filepath.Join(dir, "reference.onnx")
		conv, err := Convert(req.ONNX, refONNX, ConvertOptions{Pooling: meta.Pooling, Normalize: meta.Normalize})
		if err != nil {
			return nil, nil, fmt.Errorf("pooled reference: %w", err)
		}
		rep = conv.Report
	}
	tokPath := req.Tokenizer
	if tokPath == "" {
		if tokPath, err = FindTokenizer(req.ONNX); err != nil {
			return nil, nil, err
		}
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load tokenizer: %w", err)
	}
	sentences := req.Sentences
	if len(sentences) == 0 {
		sentences = DefaultParitySentences
	}
	in, err := buildParityInputs(rep, meta, ver, tok, sentences)
	if err != nil {
		return nil, nil, err
	}
	hidden := hiddenOutput(rep)
	if hidden == "" {
		return nil, nil, fmt.Errorf("%s has no [batch, seq, hidden] or pooled embeddings output to compare", req.ONNX)
	}
	args := []string{"--loadEngine=" + res.Engine}
	var shapes, loads []string
	for i, name := range in.names {
		path := filepath.Join(dir, name+".bin")
		if err := writeTensorFile(path, in.values[name], in.dtypes[i]); err != nil {
			return nil, nil, err
		}
		shapes = append(shapes, fmt.Sprintf("%s:%dx%d", quoteInputName(name), in.batch, in.seq))
		loads = append(loads, quoteInputName(name)+":"+path)
	}
	outPath := filepath.Join(dir, "output.json")
	args = append(args, "--shapes="+strings.Join(shapes, ","), "--loadInputs="+strings.Join(loads, ","), "--exportOutput="+outPath)
	args = append(args, inferOnceArgs...)
	run, err := RunTrtexec(ctx, trtexec, args, res.Engine+".parity.log", req.Progress)
	if err != nil {
		return nil, nil, err
	}
	if err := run.Failure("parity run"); err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(outPath)
	if err != nil {
		return nil, nil, fmt.Errorf("trtexec wrote no --exportOutput file: %w", err)
	}
	outs, err := ParseTrtexecOutput(raw)
	if err != nil {
		return nil, nil, err
	}
	trt, ok := outs[hidden]
	if !ok {
		return nil, nil, fmt.Errorf("trtexec's exported output has no tensor %q", hidden)
	}
	ref, err := ortHiddenStates(req.ORTLib, refONNX, rep, in, hidden)
	if err != nil {
		return nil, nil, err
	}
	if len(trt.Values) != len(ref) {
		return nil, nil, fmt.Errorf("engine output %q has %d values (%s), ONNX Runtime's has %d", hidden, len(trt.Values), trt.Dims, len(ref))
	}
	var p *Parity
	if rep.Pooled {
		p = comparePooled(trt.Values, ref, in)
	} else {
		p = compareHidden(trt.Values, ref, in)
	}
	p.Sentences, p.Output, p.InputDType = len(sentences), hidden, in.dtypes[0]
	p.AbsTol, p.CosTol = req.AbsTol, req.MinCosine
	if p.AbsTol == 0 {
		p.AbsTol = DefaultAbsTol
	}
	if p.CosTol == 0 {
		p.CosTol = DefaultMinCosine
	}
	p.Passed = p.MaxAbsDiff <= p.AbsTol && p.MinCosine >= p.CosTol
	return p, run.Bindings, nil
}

func buildParityInputs(rep *Report, meta *EngineMeta, ver TRTVersion, tok *tokenizer.Tokenizer, sentences []string) (*parityInputs, error) {
	in := &parityInputs{batch: len(sentences), values: map[string][]int64{}}
	rows := make([][]int32, len(sentences))
	for i, s := range sentences {
		rows[i] = tok.Encode(s)
		in.seq = max(in.seq, len(rows[i]))
	}
	if meta != nil {
		if meta.MaxBatch > 0 && int64(in.batch) > meta.MaxBatch {
			in.batch = int(meta.MaxBatch)
			rows = rows[:in.batch]
		}
		for _, t := range meta.Inputs {
			if len(t.Min) == 2 {
				in.seq = max(in.seq, int(t.Min[1]))
				in.batch = max(in.batch, int(t.Min[0])) // extra rows repeat row 0
			}
			if len(t.Max) == 2 && int64(in.seq) > t.Max[1] {
				return nil, fmt.Errorf("sample sentences need %d tokens, the engine's profile allows %d", in.seq, t.Max[1])
			}
		}
	}
	for len(rows) < in.batch {
		rows = append(rows, rows[0])
	}
	for _, v := range rep.Inputs {
		dt := meta.InputDType(v.Name)
		if dt == "" {
			dt = EngineInputDType(ver, v.DType)
		}
		vals := make([]int64, in.batch*in.seq)
		for r, row := range rows {
			for t := 0; t < in.seq; t++ {
				var id int32
				if t < len(row) {
					id = row[t]
				}
				x, err := fillValue(v.Name, id, t >= len(row))
				if err != nil {
					return nil, err
				}
				vals[r*in.seq+t] = x
			}
		}
		in.names, in.dtypes = append(in.names, v.Name), append(in.dtypes, dt)
		in.values[v.Name] = vals
	}
	in.mask = make([]int64, in.batch*in.seq)
	for r, row := range rows {
		for t := range row {
			in.mask[r*in.seq+t] = 1
		}
	}
	return in, nil
}

// hiddenOutput picks the output to compare: the pooled embeddings of a
// graph that pools, else the [batch, seq, hidden] output (last_hidden_state).
func hiddenOutput(rep *Report) string {
	if e, ok := rep.Embeddings(); ok {
		return e.Name
	}
	for _, o := range rep.Outputs {
		if len(o.Shape) == 3 {
			return o.Name
		}
	}
	return ""
}

// writeTensorFile writes vals as raw little-endian dtype, the layout
// trtexec's --loadInputs reads.
func writeTensorFile(path string, vals []int64, dtype string) error {
	var buf []byte
	switch dtype {
	case "int32":
		buf = make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(buf[4*i:], uint32(int32(v)))
		}
	case "int64":
		buf = make([]byte, 8*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint64(buf[8*i:], uint64(v))
		}
	default:
		return fmt.Errorf("engine input dtype %q: verify-engine writes only int32 and int64 inputs", dtype)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return fmt.Errorf("write trtexec input: %w", err)
	}
	return nil
}

// ExportedTensor is one output in trtexec's --exportOutput JSON.
type ExportedTensor struct {
	Name   string
	Dims   string // "8x16x768"
	Shape  []int64
	Values []float32 // NaN where trtexec printed nan
}

var nonFiniteRE = regexp.MustCompile(`(?i)-?\b(nan|inf|infinity)\b`)

// ParseTrtexecOutput reads trtexec's --exportOutput file: a JSON array of
// {"name", "dimensions": "AxBxC", "values": [...]} objects. trtexec prints
// non-finite floats as bare nan/inf, which is not JSON; they become NaN.
func ParseTrtexecOutput(data []byte) (map[string]*ExportedTensor, error) {
	clean := data
	if lower := bytes.ToLower(data); bytes.Contains(lower, []byte("nan")) || bytes.Contains(lower, []byte("inf")) {
		clean = nonFiniteRE.ReplaceAll(data, []byte("null"))
	}
	var raw []struct {
		Name   string          `json:"name"`
		Dims   string          `json:"dimensions"`
		Values json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(clean, &raw); err != nil {
		return nil, fmt.Errorf("parse trtexec output JSON: %w", err)
	}
	out := make(map[string]*ExportedTensor, len(raw))
	for _, r := range raw {
		if r.Name == "" {
			return nil, fmt.Errorf("trtexec output entry without a name")
		}
		t := &ExportedTensor{Name: r.Name, Dims: r.Dims}
		vol := int64(1)
		for _, f := range strings.Split(r.Dims, "x") {
			d, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("trtexec output %q: bad dimensions %q", r.Name, r.Dims)
			}
			t.Shape = append(t.Shape, d)
			vol *= d
			if vol > math.MaxInt32 {
				return nil, fmt.Errorf("trtexec output %q: dimensions %q too large", r.Name, r.Dims)
			}
		}
		vals, err := parseValueList(r.Values)
		if err != nil {
			return nil, fmt.Errorf("trtexec output %q: %w", r.Name, err)
		}
		if vol != int64(len(vals)) {
			return nil, fmt.Errorf("trtexec output %q: %d values for dimensions %s", r.Name, len(vals), r.Dims)
		}
		t.Values = vals
		out[r.Name] = t
	}
	return out, nil
}

// parseValueList reads a JSON array of numbers (null = NaN) without
// allocating per value.
func parseValueList(b json.RawMessage) ([]float32, error) {
	s := strings.TrimSpace(string(b))
	if s == "" || s == "null" {
		return nil, nil
	}
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("values is not an array")
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	if s == "" {
		return nil, nil
	}
	vals := make([]float32, 0, strings.Count(s, ",")+1)
	for len(s) > 0 {
		tok := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			tok, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		tok = strings.TrimSpace(tok)
		if tok == "null" {
			vals = append(vals, float32(math.NaN()))
			continue
		}
		v, err := strconv.ParseFloat(tok, 32)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("value %q is not a number", tok)
		}
		vals = append(vals, float32(v))
	}
	return vals, nil
}

// compareHidden computes max |Δ| over all hidden states and the smallest
// cosine between the mean-pooled, normalised embeddings of each row.
func compareHidden(trt, ref []float32, in *parityInputs) *Parity {
	p := &Parity{Batch: in.batch, Seq: in.seq, MinCosine: 1}
	for i := range trt {
		d := math.Abs(float64(trt[i]) - float64(ref[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		p.MaxAbsDiff = max(p.MaxAbsDiff, d)
	}
	hidden := len(ref) / (in.batch * in.seq)
	for r := 0; r < in.batch; r++ {
		a := meanPoolRow(trt, in.mask, r, in.seq, hidden)
		b := meanPoolRow(ref, in.mask, r, in.seq, hidden)
		var dot, na, nb float64
		for i := range a {
			dot += a[i] * b[i]
			na += a[i] * a[i]
			nb += b[i] * b[i]
		}
		c := dot / math.Sqrt(na*nb)
		if math.IsNaN(c) {
			c = -1
		}
		p.MinCosine = min(p.MinCosine, c)
	}
	return p
}

// comparePooled compares sentence embeddings [batch, dim] row by row.
func comparePooled(trt, ref []float32, in *parityInputs) *Parity {
	p := &Parity{Batch: in.batch, Seq: in.seq, MinCosine: 1}
	dim := len(ref) / in.batch
	for r := 0; r < in.batch; r++ {
		var dot, na, nb float64
		for k := r * dim; k < (r+1)*dim; k++ {
			a, b := float64(trt[k]), float64(ref[k])
			d := math.Abs(a - b)
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			p.MaxAbsDiff = max(p.MaxAbsDiff, d)
			dot, na, nb = dot+a*b, na+a*a, nb+b*b
		}
		c := dot / math.Sqrt(na*nb)
		if math.IsNaN(c) {
			c = -1
		}
		p.MinCosine = min(p.MinCosine, c)
	}
	return p
}

func meanPoolRow(h []float32, mask []int64, r, seq, hidden int) []float64 {
	out := make([]float64, hidden)
	n := 0.0
	for t := 0; t < seq; t++ {
		if mask[r*seq+t] == 0 {
			continue
		}
		n++
		base := (r*seq + t) * hidden
		for k := 0; k < hidden; k++ {
			out[k] += float64(h[base+k])
		}
	}
	for k := range out {
		out[k] /= max(n, 1e-9)
	}
	return out
}
