package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

func TestDTypeName(t *testing.T) {
	tests := []struct {
		code int32
		name string
		bits int64
	}{
		{1, "float32", 32}, {7, "int64", 64}, {6, "int32", 32}, {10, "float16", 16},
		{16, "bfloat16", 16}, {9, "bool", 8}, {8, "string", 0}, {22, "int4", 4},
		{0, "undefined", 0}, {999, "dtype(999)", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DTypeName(tc.code); got != tc.name {
				t.Errorf("DTypeName(%d) = %q, want %q", tc.code, got, tc.name)
			}
			if got := DTypeBits(tc.code); got != tc.bits {
				t.Errorf("DTypeBits(%d) = %d, want %d", tc.code, got, tc.bits)
			}
		})
	}
}

func TestShapeFormatting(t *testing.T) {
	tests := []struct {
		name  string
		shape []Dim
		text  string
		json  string
	}{
		{"symbolic names kept", []Dim{{Param: "batch_size"}, {Param: "max_seq_len"}}, "[batch_size, max_seq_len]", `["batch_size","max_seq_len"]`},
		{"fixed and symbolic mixed", []Dim{{Param: "batch"}, {Value: 64}}, "[batch, 64]", `["batch",64]`},
		{"unknown dimension is null", []Dim{{}, {Value: 3}}, "[?, 3]", `[null,3]`},
		{"scalar", []Dim{}, "[]", `[]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatShape(tc.shape); got != tc.text {
				t.Errorf("FormatShape = %q, want %q", got, tc.text)
			}
			b, err := json.Marshal(tc.shape)
			if err != nil || string(b) != tc.json {
				t.Fatalf("json = %s (%v), want %s", b, err, tc.json)
			}
			var back []Dim
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if FormatShape(back) != tc.text {
				t.Errorf("round trip gave %v", back)
			}
		})
	}
}

func TestNumElements(t *testing.T) {
	tests := []struct {
		name string
		dims []int64
		want int64
		err  bool
	}{
		{"scalar has one element", nil, 1, false},
		{"matrix", []int64{21128, 64}, 1352192, false},
		{"zero-size", []int64{0, 5}, 0, false},
		{"negative dim refused", []int64{-1, 4}, 0, true},
		{"overflow refused", []int64{1 << 40, 1 << 40}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := numElements(tc.dims)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("numElements(%v) = %d, %v", tc.dims, got, err)
			}
		})
	}
}

// copyDynamo copies the external-data fixture into a temp dir, with the
// data file cut to keep bytes (-1: whole, 0: absent).
func copyDynamo(t *testing.T, keep int) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(fixtures, "dynamo/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if keep != 0 {
		data, err := os.ReadFile(filepath.Join(fixtures, "dynamo/model.onnx.data"))
		if err != nil {
			t.Fatal(err)
		}
		if keep > 0 {
			data = data[:keep]
		}
		if err := os.WriteFile(filepath.Join(dir, "model.onnx.data"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "model.onnx")
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile(filepath.Join(fixtures, "dynamo/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		is      error
		mention []string
	}{
		{"missing file", filepath.Join(dir, "absent.onnx"), os.ErrNotExist, []string{"absent.onnx", "no such file"}},
		{"empty file", write("empty.onnx", nil), ErrNotONNX, []string{"empty.onnx", "empty"}},
		{"corrupt bytes", write("corrupt.onnx", []byte{0xff, 0xff, 0xff, 0x0f, 0x12}), ErrNotONNX, []string{"corrupt.onnx", "not an ONNX model"}},
		{"text file", write("vocab.onnx", []byte("[PAD]\n[UNK]\n[CLS]\n")), ErrNotONNX, []string{"vocab.onnx", "not an ONNX model"}},
		{"truncated model", write("half.onnx", good[:len(good)/2]), ErrNotONNX, []string{"half.onnx"}},
		{"protobuf that is not a model", write("other.onnx", []byte{0x08, 0x01}), ErrNotONNX, []string{"no IR version or no graph"}},
		{"directory", dir, nil, []string{"is a directory"}},
		{"external data missing", copyDynamo(t, 0), ErrExternalData, []string{"model.onnx.data not found"}},
		{"external data truncated", copyDynamo(t, 4096), ErrExternalData, []string{"model.onnx.data is 4096 bytes", "truncated"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Inspect(tc.path)
			if err == nil {
				t.Fatalf("Inspect succeeded: %+v", r)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, m := range tc.mention {
				if !strings.Contains(msg, m) {
					t.Errorf("error %q does not mention %q", msg, m)
				}
			}
		})
	}
}

func TestInspectExternalDataWhole(t *testing.T) {
	r, err := Inspect(copyDynamo(t, -1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Parameters != 1456320 || r.ParameterBytes != 4*1456320 {
		t.Errorf("parameters = %d (%d bytes)", r.Parameters, r.ParameterBytes)
	}
}

func TestEncoderCheck(t *testing.T) {
	hidden := ValueInfo{Name: "output", DType: "float32", Shape: []Dim{{Param: "batch"}, {Param: "seq"}, {Value: 64}}}
	pooled := ValueInfo{Name: "tanh", DType: "float32", Shape: []Dim{{Param: "batch"}, {Value: 64}}}
	ids := ValueInfo{Name: "ids", DType: "int64", Shape: []Dim{{Param: "batch"}, {Param: "seq"}, {Value: 1}}}
	tests := []struct {
		name    string
		outputs []ValueInfo
		want    string // "" for an encoder
	}{
		{"hidden states only", []ValueInfo{hidden}, ""},
		{"pooler output first is skipped", []ValueInfo{pooled, hidden}, ""},
		{"only a pooled output", []ValueInfo{pooled}, "not an encoder"},
		{"3-D but not float", []ValueInfo{ids}, "not an encoder"},
		{"no outputs", nil, "not an encoder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{Path: "m.onnx", Outputs: tc.outputs}
			err := r.IsEncoder()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if o, _ := r.HiddenStates(); o.Name != "output" {
					t.Errorf("HiddenStates = %q", o.Name)
				}
				return
			}
			if !errors.Is(err, ErrNotEncoder) || !strings.Contains(err.Error(), "m.onnx") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestCheckVocab(t *testing.T) {
	r := &Report{Path: "model.onnx", Architecture: &Architecture{VocabSize: 21128}}
	tests := []struct {
		name  string
		vocab int
		ok    bool
	}{
		{"same size", 21128, true},
		{"table padded a little", 21120, true},
		{"vocabulary larger than the table", 30522, false},
		{"a different, much smaller vocabulary", 8000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := r.CheckVocab(tc.vocab, "vocab.txt")
			if (err == nil) != tc.ok {
				t.Fatalf("CheckVocab(%d) = %v", tc.vocab, err)
			}
			var vm *VocabMismatchError
			if err != nil && (!errors.As(err, &vm) || vm.TableRows != 21128 || !strings.Contains(err.Error(), "vocab.txt")) {
				t.Errorf("error %v", err)
			}
		})
	}
	if err := (&Report{}).CheckVocab(5, "v"); err != nil {
		t.Errorf("unknown table must not fail: %v", err)
	}
}

// Both ways of finding the head count must work on both exports, so that
// an export lacking one still gets the right answer.
func TestHeadsEachMethod(t *testing.T) {
	for _, model := range []string{"model.onnx", "dynamo/model.onnx"} {
		t.Run(model, func(t *testing.T) {
			m, err := ReadModel(filepath.Join(fixtures, model))
			if err != nil {
				t.Fatal(err)
			}
			x := newGraphIndex(m.GetGraph())
			if d := x.headDimFromScale(64); d != 16 {
				t.Errorf("head_dim from the attention scale = %d, want 16", d)
			}
			votes := map[int64]int{}
			for _, n := range m.GetGraph().GetNode() {
				if n.GetOpType() == "Reshape" {
					if h := headsFromShape(x.shapeValues(n.GetInput()[1]), 64); h > 0 {
						votes[h]++
					}
				}
			}
			if h := mostVoted(votes); h != 4 {
				t.Errorf("heads from reshape targets = %d (votes %v), want 4", h, votes)
			}
		})
	}
}

func TestHeadDim(t *testing.T) {
	tests := []struct {
		name  string
		op    string
		c     float64
		power float64
		want  int64
	}{
		{"Mul by 1/sqrt(16)", "Mul", 0.25, 2, 16},
		{"Div by sqrt(64)", "Div", 8, 2, 64},
		{"split scale on Q and K", "Mul", 0.5, 4, 16},
		{"Mul by -1 is not a scale", "Mul", -1, 2, 0},
		{"Mul by 1 is not a scale", "Mul", 1, 2, 0},
		{"mask constant", "Mul", -3.4e38, 2, 0},
		{"head_dim must divide hidden", "Div", 5, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := headDim(tc.op, tc.c, tc.power, 768); got != tc.want {
				t.Errorf("headDim = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSuggestProfile(t *testing.T) {
	dyn := []Dim{{Param: "batch"}, {Param: "seq"}}
	tests := []struct {
		name     string
		inputs   []ValueInfo
		maxPos   int
		opt, max []int64
	}{
		{"article profile for 512 positions", []ValueInfo{{Name: "input_ids", Shape: dyn}}, 512, []int64{16, 128}, []int64{64, 512}},
		{"short window caps opt and max", []ValueInfo{{Name: "input_ids", Shape: dyn}}, 64, []int64{16, 64}, []int64{64, 64}},
		{"unknown window assumes 512", []ValueInfo{{Name: "input_ids", Shape: dyn}}, 0, []int64{16, 128}, []int64{64, 512}},
		{"fixed batch kept", []ValueInfo{{Name: "input_ids", Shape: []Dim{{Value: 8}, {Param: "seq"}}}}, 512, []int64{8, 128}, []int64{8, 512}},
		{"static inputs need no profile", []ValueInfo{{Name: "input_ids", Shape: []Dim{{Value: 1}, {Value: 128}}}}, 512, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{Inputs: tc.inputs}
			if tc.maxPos > 0 {
				r.Architecture = &Architecture{MaxPositions: tc.maxPos}
			}
			p := suggestProfile(r)
			if tc.opt == nil {
				if p != nil {
					t.Fatalf("profile %+v, want none", p)
				}
				return
			}
			if p == nil {
				t.Fatal("no profile")
			}
			if got := p.Opt["input_ids"]; FormatShape(dimsOf(got)) != FormatShape(dimsOf(tc.opt)) {
				t.Errorf("opt = %v, want %v", got, tc.opt)
			}
			if got := p.Max["input_ids"]; FormatShape(dimsOf(got)) != FormatShape(dimsOf(tc.max)) {
				t.Errorf("max = %v, want %v", got, tc.max)
			}
		})
	}
}

func dimsOf(v []int64) []Dim {
	out := make([]Dim, len(v))
	for i, x := range v {
		out[i] = Dim{Value: x}
	}
	return out
}

func TestInspectText(t *testing.T) {
	r, err := Inspect(filepath.Join(fixtures, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	r.Path = "model.onnx"
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	path := "../../testdata/convert/inspect-model.txt"
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("text form differs from %s:\n%s", path, b.String())
	}
}

// syntheticModel is a minimal well-formed model for the fuzz corpus.
func syntheticModel() []byte {
	f := int32(onnxpb.TensorProto_FLOAT)
	m := &onnxpb.ModelProto{
		IrVersion:   8,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}},
		Graph: &onnxpb.GraphProto{
			Initializer: []*onnxpb.TensorProto{
				{Name: "word_embeddings", Dims: []int64{10, 4}, DataType: f, RawData: make([]byte, 160)},
				{Name: "scale", DataType: f, FloatData: []float32{0.5}},
				{Name: "ext", Dims: []int64{2}, DataType: f, DataLocation: onnxpb.TensorProto_EXTERNAL,
					ExternalData: []*onnxpb.StringStringEntryProto{{Key: "location", Value: "w.bin"}, {Key: "offset", Value: "0"}}},
			},
			Node: []*onnxpb.NodeProto{
				{OpType: "Gather", Input: []string{"word_embeddings", "input_ids"}, Output: []string{"e"}},
				{OpType: "Mul", Input: []string{"e", "scale"}, Output: []string{"s"}},
				{OpType: "Softmax", Input: []string{"s"}, Output: []string{"out"}},
			},
			Input: []*onnxpb.ValueInfoProto{{Name: "input_ids", Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
				ElemType: 7, Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
					{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}}, {Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "seq"}}}}}}}}},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzInspect feeds arbitrary bytes to the model reader: it must return a
// report or an error, never panic, and a report must encode to JSON and text.
func FuzzInspect(f *testing.F) {
	f.Add(syntheticModel())
	if b, err := os.ReadFile(filepath.Join(fixtures, "dynamo/model.onnx")); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x06, 0x3a, 0x00})
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), make([]byte, 64), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeModel(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		r, err := inspectModel(m, filepath.Join(dir, "fuzz.onnx"))
		if err != nil {
			return
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("report does not encode: %v", err)
		}
		var b strings.Builder
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		_ = r.IsEncoder()
	})
}

// BenchmarkInspect reports the time and the memory allocated to inspect
// the single-file fixture (5.8 MB): allocation near one model's size shows
// that the file is not copied before decoding.
func BenchmarkInspect(b *testing.B) {
	for _, model := range []string{"model.onnx", "dynamo/model.onnx"} {
		b.Run(model, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := Inspect(filepath.Join(fixtures, model)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The skimming decoder must see exactly what a whole-message decode sees,
// less the values of large tensors.
func TestSkimMatchesFullDecode(t *testing.T) {
	for _, model := range []string{"model.onnx", "dynamo/model.onnx"} {
		t.Run(model, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(fixtures, model))
			if err != nil {
				t.Fatal(err)
			}
			full := &onnxpb.ModelProto{}
			if err := proto.Unmarshal(b, full); err != nil {
				t.Fatal(err)
			}
			for _, t := range full.GetGraph().GetInitializer() {
				if n, _ := numElements(t.GetDims()); n > smallTensor {
					dropData(t)
				}
			}
			skim, err := decodeModel(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(full, skim) {
				t.Error("skimmed model differs from the whole decode")
			}
		})
	}
}
