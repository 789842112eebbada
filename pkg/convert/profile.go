package convert

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ShapeProfile is the TensorRT optimisation profile for every dynamic input
// of a graph, in the graph's input order, which is the order trtexec's
// --minShapes/--optShapes/--maxShapes lists use.
type ShapeProfile struct {
	Inputs []InputShapes `json:"inputs"`
}

// InputShapes is one dynamic input's min/opt/max shapes.
type InputShapes struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"` // the ONNX graph's dtype ("int64" for the article's export)
	Min   []int64 `json:"min"`
	Opt   []int64 `json:"opt"`
	Max   []int64 `json:"max"`
}

// ProfileError says why a shape profile was refused before trtexec ran; the
// CLI prints it as is, and tests tell refusals apart by Input and Reason.
type ProfileError struct {
	Input  string // the input concerned, "" when the whole argument is malformed
	Reason string
}

// Error implements error.
func (e *ProfileError) Error() string {
	if e.Input == "" {
		return "shape profile: " + e.Reason
	}
	return fmt.Sprintf("shape profile for input %q: %s", e.Input, e.Reason)
}

// ShapeArg is one parsed --min/--opt/--max argument: either the BxS shorthand
// that applies to every dynamic [batch, seq] input, or explicit shapes per input.
type ShapeArg struct {
	All      []int64            // shorthand shape, nil when PerInput is used
	PerInput map[string][]int64 // name → shape
}

// ParseShapeArg parses "16x128" or "input_ids:16x128,attention_mask:16x128".
// Input names may be quoted with single quotes, as trtexec allows ('in:0':1x2).
func ParseShapeArg(s string) (ShapeArg, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ShapeArg{}, &ProfileError{Reason: "empty shape"}
	}
	if !strings.Contains(s, ":") {
		dims, err := parseDims(s)
		if err != nil {
			return ShapeArg{}, &ProfileError{Reason: fmt.Sprintf("%q: %v", s, err)}
		}
		return ShapeArg{All: dims}, nil
	}
	out := ShapeArg{PerInput: map[string][]int64{}}
	for _, part := range splitSpecs(s) {
		name, dimStr, ok := cutName(part)
		if !ok || name == "" {
			return ShapeArg{}, &ProfileError{Reason: fmt.Sprintf("%q is not name:shape", part)}
		}
		dims, err := parseDims(dimStr)
		if err != nil {
			return ShapeArg{}, &ProfileError{Input: name, Reason: fmt.Sprintf("%q: %v", dimStr, err)}
		}
		if _, dup := out.PerInput[name]; dup {
			return ShapeArg{}, &ProfileError{Input: name, Reason: "given twice"}
		}
		out.PerInput[name] = dims
	}
	return out, nil
}

// splitSpecs splits on commas outside single quotes.
func splitSpecs(s string) []string {
	var parts []string
	quoted, start := false, 0
	for i, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == ',' && !quoted:
			parts = append(parts, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(parts, strings.TrimSpace(s[start:]))
}

// cutName splits name:dims at the last colon outside quotes, so that names
// such as 'input:0' keep their colon.
func cutName(part string) (name, dims string, ok bool) {
	if strings.HasPrefix(part, "'") {
		end := strings.Index(part[1:], "'")
		if end < 0 {
			return "", "", false
		}
		name = part[1 : end+1]
		rest := part[end+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return name, rest[1:], true
	}
	i := strings.LastIndex(part, ":")
	if i < 0 {
		return "", "", false
	}
	return part[:i], part[i+1:], true
}

func parseDims(s string) ([]int64, error) {
	if s == "" {
		return nil, errors.New("no dimensions")
	}
	fields := strings.Split(s, "x")
	dims := make([]int64, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("dimension %q is not an integer", f)
		}
		if v < 1 {
			return nil, fmt.Errorf("dimension %d is below 1", v)
		}
		dims[i] = v
	}
	return dims, nil
}

// IsDynamic reports whether an input has a symbolic or unknown dimension, and
// so needs a shape profile.
func IsDynamic(v ValueInfo) bool {
	for _, d := range v.Shape {
		if d.Param != "" || d.Value <= 0 {
			return true
		}
	}
	return false
}

// NewShapeProfile checks min/opt/max against the graph's inputs and returns
// the profile trtexec will be given. maxPositions (the model's position
// table, 512 for m3e-base; 0 when unknown) bounds the sequence dimension of
// [batch, seq] inputs. Every refusal is a *ProfileError.
func NewShapeProfile(inputs []ValueInfo, min, opt, max ShapeArg, maxPositions int) (*ShapeProfile, error) {
	known := map[string]ValueInfo{}
	var dynamic []ValueInfo
	for _, in := range inputs {
		known[in.Name] = in
		if IsDynamic(in) {
			dynamic = append(dynamic, in)
		}
	}
	if len(dynamic) == 0 {
		return nil, &ProfileError{Reason: "the graph has no dynamic inputs; it needs no shape profile"}
	}
	for _, a := range []ShapeArg{min, opt, max} {
		for _, name := range sortedKeys(a.PerInput) {
			in, ok := known[name]
			if !ok {
				return nil, &ProfileError{Input: name, Reason: fmt.Sprintf("the graph has no such input (inputs: %s)", inputNames(inputs))}
			}
			if !IsDynamic(in) {
				return nil, &ProfileError{Input: name, Reason: "the input is static; it takes no shape profile"}
			}
		}
	}
	p := &ShapeProfile{}
	for _, in := range dynamic {
		is := InputShapes{Name: in.Name, DType: in.DType}
		var err error
		if is.Min, err = shapeFor(in, min, "min"); err != nil {
			return nil, err
		}
		if is.Opt, err = shapeFor(in, opt, "opt"); err != nil {
			return nil, err
		}
		if is.Max, err = shapeFor(in, max, "max"); err != nil {
			return nil, err
		}
		if err := checkInput(in, is, maxPositions); err != nil {
			return nil, err
		}
		p.Inputs = append(p.Inputs, is)
	}
	return p, nil
}

func shapeFor(in ValueInfo, a ShapeArg, which string) ([]int64, error) {
	var dims []int64
	if a.All != nil {
		if len(in.Shape) != 2 {
			return nil, &ProfileError{Input: in.Name, Reason: fmt.Sprintf("rank %d input: the BxS shorthand fits only [batch, seq] inputs; give --%s %s:%s", len(in.Shape), which, in.Name, strings.Repeat("Nx", len(in.Shape)-1)+"N")}
		}
		dims = a.All
	} else {
		d, ok := a.PerInput[in.Name]
		if !ok {
			return nil, &ProfileError{Input: in.Name, Reason: fmt.Sprintf("dynamic input has no --%s shape", which)}
		}
		dims = d
	}
	if len(dims) != len(in.Shape) {
		return nil, &ProfileError{Input: in.Name, Reason: fmt.Sprintf("--%s shape %s has %d dimensions, the input has rank %d", which, FormatDims(dims), len(dims), len(in.Shape))}
	}
	for i, d := range in.Shape {
		if d.Param == "" && d.Value > 0 && dims[i] != d.Value {
			return nil, &ProfileError{Input: in.Name, Reason: fmt.Sprintf("--%s dimension %d is %d but the graph fixes it at %d", which, i, dims[i], d.Value)}
		}
	}
	return append([]int64(nil), dims...), nil
}

func checkInput(in ValueInfo, is InputShapes, maxPositions int) error {
	for i := range is.Min {
		if is.Min[i] > is.Opt[i] || is.Opt[i] > is.Max[i] {
			return &ProfileError{Input: in.Name, Reason: fmt.Sprintf("dimension %d must satisfy min ≤ opt ≤ max, got %d, %d, %d", i, is.Min[i], is.Opt[i], is.Max[i])}
		}
	}
	if maxPositions > 0 && len(is.Max) == 2 && is.Max[1] > int64(maxPositions) {
		return &ProfileError{Input: in.Name, Reason: fmt.Sprintf("max sequence length %d exceeds the model's %d positions", is.Max[1], maxPositions)}
	}
	return nil
}

// Spec formats one of "min", "opt", "max" as trtexec's shape list,
// e.g. "input_ids:1x1,attention_mask:1x1".
func (p *ShapeProfile) Spec(which string) string {
	parts := make([]string, 0, len(p.Inputs))
	for _, in := range p.Inputs {
		dims := in.Opt
		switch which {
		case "min":
			dims = in.Min
		case "max":
			dims = in.Max
		}
		parts = append(parts, quoteInputName(in.Name)+":"+FormatDims(dims))
	}
	return strings.Join(parts, ",")
}

// MaxBatch is the largest batch dimension the profile admits (0 if none).
func (p *ShapeProfile) MaxBatch() int64 {
	var m int64
	for _, in := range p.Inputs {
		if len(in.Max) > 0 && (m == 0 || in.Max[0] < m) {
			m = in.Max[0]
		}
	}
	return m
}

// MaxSeq is the largest sequence length the [batch, seq] inputs admit (0 if none).
func (p *ShapeProfile) MaxSeq() int64 {
	var m int64
	for _, in := range p.Inputs {
		if len(in.Max) == 2 && (m == 0 || in.Max[1] < m) {
			m = in.Max[1]
		}
	}
	return m
}

// ToProfile converts to the Report's Profile type.
func (p *ShapeProfile) ToProfile() *Profile {
	out := &Profile{Min: map[string][]int64{}, Opt: map[string][]int64{}, Max: map[string][]int64{}}
	for _, in := range p.Inputs {
		out.Min[in.Name], out.Opt[in.Name], out.Max[in.Name] = in.Min, in.Opt, in.Max
	}
	return out
}

// FormatDims writes dims as trtexec does: 16x128.
func FormatDims(dims []int64) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = strconv.FormatInt(d, 10)
	}
	return strings.Join(s, "x")
}

func quoteInputName(n string) string {
	if strings.ContainsAny(n, ":,") {
		return "'" + n + "'"
	}
	return n
}

func inputNames(inputs []ValueInfo) string {
	n := make([]string, len(inputs))
	for i, in := range inputs {
		n[i] = in.Name
	}
	return strings.Join(n, ", ")
}

func sortedKeys(m map[string][]int64) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
