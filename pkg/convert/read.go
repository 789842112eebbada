package convert

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// ErrNotONNX marks a file that does not decode as an ONNX model (corrupt or
// truncated bytes, or another kind of file).
var ErrNotONNX = errors.New("not an ONNX model")

// ErrExternalData marks a model whose external-data file is missing or
// shorter than its tensors need; ONNX Runtime and trtexec would fail on it.
var ErrExternalData = errors.New("external data unusable")

// smallTensor is the largest tensor (in elements) whose data the reader
// keeps after counting: enough for shape constants and attention scales,
// which architecture detection reads, and nothing the size of a weight.
const smallTensor = 64

// Inspect reads the ONNX model at path and describes it. Weights stored in
// external-data files are counted from their dims and data type; the files
// are only checked to exist and be long enough, never read. The weights
// inside the .onnx file are skipped while decoding, never read or copied:
// memory use is the graph's structure plus its small constants, a few MB
// even for a model of hundreds of MB.
func Inspect(path string) (*Report, error) {
	m, err := ReadModel(path)
	if err != nil {
		return nil, err
	}
	return inspectModel(m, path)
}

// ReadModel decodes the ONNX model at path into the generated protobuf
// types, leaving out the values of every tensor larger than a few dozen
// elements (see Inspect). Callers that need the graph itself (node inputs,
// attributes, initializer dims) use it; the weights are not available.
func ReadModel(path string) (*onnxpb.ModelProto, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("read model: %s is a directory, not an .onnx file", path)
	}
	m, err := decodeModel(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// decodeModel decodes a model without the values of its large tensors
// (see decodeSkim), releases those of all but the smallest, and
// sanity-checks it: protobuf accepts many byte strings that are not ONNX at
// all, so a model must also carry an IR version and a graph.
func decodeModel(r io.ReaderAt, size int64) (*onnxpb.ModelProto, error) {
	if size == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrNotONNX)
	}
	m, err := decodeSkim(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotONNX, err)
	}
	if m.GetIrVersion() <= 0 || m.GetGraph() == nil {
		return nil, fmt.Errorf("%w: no IR version or no graph", ErrNotONNX)
	}
	for _, t := range m.GetGraph().GetInitializer() {
		if n, err := numElements(t.GetDims()); err != nil || n > smallTensor {
			dropData(t)
		}
	}
	return m, nil
}

// dropData releases a tensor's values, keeping its name, dims and type.
func dropData(t *onnxpb.TensorProto) {
	t.RawData, t.FloatData, t.Int32Data, t.Int64Data = nil, nil, nil, nil
	t.DoubleData, t.Uint64Data, t.StringData = nil, nil, nil
}

// inspectModel builds the report of a decoded model; path locates the
// external-data files.
func inspectModel(m *onnxpb.ModelProto, path string) (*Report, error) {
	g := m.GetGraph()
	r := &Report{
		Path:            path,
		IRVersion:       m.GetIrVersion(),
		Opset:           defaultOpset(m),
		Producer:        m.GetProducerName(),
		ProducerVersion: m.GetProducerVersion(),
		Inputs:          []ValueInfo{},
		Outputs:         []ValueInfo{},
		Ops:             map[string]int{},
		ExternalData:    []string{},
	}
	initNames := map[string]bool{}
	for _, t := range g.GetInitializer() {
		initNames[t.GetName()] = true
	}
	// Before IR 4 initializers were also listed as graph inputs; they are
	// weights, not something a caller feeds.
	for _, in := range g.GetInput() {
		if !initNames[in.GetName()] {
			r.Inputs = append(r.Inputs, valueInfo(in))
		}
	}
	for _, out := range g.GetOutput() {
		r.Outputs = append(r.Outputs, valueInfo(out))
	}
	countOps(g, r.Ops, 0)
	if err := countParameters(g, r); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrNotONNX, err)
	}
	if err := checkExternalData(g, filepath.Dir(path), r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Architecture = detectBERT(g, r)
	_, r.Pooled = r.Embeddings()
	r.SuggestedProfile = suggestProfile(r)
	return r, nil
}

// defaultOpset is the version imported for the default ONNX domain.
func defaultOpset(m *onnxpb.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// maxGraphDepth bounds the recursion into sub-graphs (If/Loop bodies).
const maxGraphDepth = 32

// countOps adds a graph's nodes, and those of its sub-graphs, to ops.
func countOps(g *onnxpb.GraphProto, ops map[string]int, depth int) {
	if depth > maxGraphDepth {
		return
	}
	for _, n := range g.GetNode() {
		key := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			key = d + "." + key
		}
		ops[key]++
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil {
				countOps(a.GetG(), ops, depth+1)
			}
			for _, sg := range a.GetGraphs() {
				countOps(sg, ops, depth+1)
			}
		}
	}
}

// countParameters sums the weight initializers (see Report.Parameters).
func countParameters(g *onnxpb.GraphProto, r *Report) error {
	add := func(dims []int64, dtype int32) error {
		n, err := numElements(dims)
		if err != nil {
			return err
		}
		if len(dims) == 0 || !dtypes[onnxpb.TensorProto_DataType(dtype)].weight {
			return nil
		}
		r.Parameters += n
		r.ParameterBytes += storageBytes(n, dtype)
		if r.Parameters > maxElements {
			return errShape
		}
		return nil
	}
	for _, t := range g.GetInitializer() {
		if err := add(t.GetDims(), t.GetDataType()); err != nil {
			return fmt.Errorf("initializer %q: %w", t.GetName(), err)
		}
	}
	for _, s := range g.GetSparseInitializer() {
		// A sparse weight stores only its non-zero values.
		if err := add(s.GetValues().GetDims(), s.GetValues().GetDataType()); err != nil {
			return fmt.Errorf("sparse initializer %q: %w", s.GetValues().GetName(), err)
		}
	}
	return nil
}

// externalRef is one tensor's slice of an external-data file.
type externalRef struct {
	tensor   string
	location string
	end      int64 // offset + length
}

// externalRefOf reads a tensor's external_data entries; ok is false for a
// tensor stored inside the model.
func externalRefOf(t *onnxpb.TensorProto) (ref externalRef, ok bool, err error) {
	if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
		return externalRef{}, false, nil
	}
	ref.tensor = t.GetName()
	var offset, length int64 = 0, -1
	for _, kv := range t.GetExternalData() {
		switch kv.GetKey() {
		case "location":
			ref.location = kv.GetValue()
		case "offset", "length":
			v, perr := strconv.ParseInt(kv.GetValue(), 10, 64)
			if perr != nil || v < 0 {
				return ref, true, fmt.Errorf("tensor %q: external_data %s %q is not a byte count", t.GetName(), kv.GetKey(), kv.GetValue())
			}
			if kv.GetKey() == "offset" {
				offset = v
			} else {
				length = v
			}
		}
	}
	if ref.location == "" {
		return ref, true, fmt.Errorf("tensor %q: external data without a location", t.GetName())
	}
	if length < 0 {
		n, nerr := numElements(t.GetDims())
		if nerr != nil {
			return ref, true, fmt.Errorf("tensor %q: %w", t.GetName(), nerr)
		}
		length = storageBytes(n, t.GetDataType())
	}
	if offset > 1<<62-length {
		return ref, true, fmt.Errorf("tensor %q: external data offset %d is implausible", t.GetName(), offset)
	}
	ref.end = offset + length
	return ref, true, nil
}

// checkExternalData lists the external-data files and checks, by stat
// alone, that each exists and is long enough for every tensor it holds.
func checkExternalData(g *onnxpb.GraphProto, dir string, r *Report) error {
	need := map[string]externalRef{} // location → the tensor reaching furthest
	count := map[string]int{}
	for _, t := range g.GetInitializer() {
		ref, ok, err := externalRefOf(t)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrExternalData, err)
		}
		if !ok {
			continue
		}
		if _, seen := need[ref.location]; !seen {
			r.ExternalData = append(r.ExternalData, ref.location)
		}
		if ref.end >= need[ref.location].end {
			need[ref.location] = ref
		}
		count[ref.location]++
	}
	for _, loc := range r.ExternalData {
		file := filepath.Join(dir, filepath.FromSlash(loc))
		st, err := os.Stat(file)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: external data file %s not found (it holds %d tensors)", ErrExternalData, file, count[loc])
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrExternalData, err)
		}
		if ref := need[loc]; st.Size() < ref.end {
			return fmt.Errorf("%w: external data file %s is %d bytes, but tensor %q ends at byte %d (truncated?)", ErrExternalData, file, st.Size(), ref.tensor, ref.end)
		}
	}
	return nil
}
