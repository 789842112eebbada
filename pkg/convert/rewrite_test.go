package convert_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// withVocab gives a written model its tokenizer.
func withVocab(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tiny, "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "vocab.txt"), b, 0o644)
}

// TestConvertMatchesReference rewrites the fixture's two foreign graphs
// (torch.onnx.export opset 11; the dynamo export with external data) and
// m3ectl's own export: the pooled graphs embed as sentence-transformers does
// (1e-5), their fp16 AutoCasts within cosine 0.9999 and max |Δ| 2e-3.
func TestConvertMatchesReference(t *testing.T) {
	ref := refVectors(t)
	own := filepath.Join(t.TempDir(), "own", "model.onnx")
	if _, err := convert.Export(filepath.Join(tiny, "hf"), convert.ExportOptions{Out: own, Pooling: "none"}); err != nil {
		t.Fatal(err)
	}
	ownPooled := filepath.Join(t.TempDir(), "ownpooled", "model.onnx")
	if _, err := convert.Export(filepath.Join(tiny, "hf"), convert.ExportOptions{Out: ownPooled}); err != nil {
		t.Fatal(err)
	}
	own13 := filepath.Join(t.TempDir(), "own13", "model.onnx")
	if _, err := convert.Export(filepath.Join(tiny, "hf"), convert.ExportOptions{Out: own13, Pooling: "none", Opset: 13}); err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{
		"opset11":        filepath.Join(tiny, "model.onnx"),
		"dynamo":         filepath.Join(tiny, "dynamo", "model.onnx"),
		"export":         own,
		"export-opset13": own13,
	}
	type variant struct {
		name string
		o    convert.ConvertOptions
	}
	variants := []variant{
		{"pooling", convert.ConvertOptions{Pooling: "mean", Normalize: true}},
		{"pooling+fp16", convert.ConvertOptions{Pooling: "mean", Normalize: true, FP16: true}},
		{"fp16", convert.ConvertOptions{FP16: true}},
	}
	for sname, src := range sources {
		for _, v := range variants {
			t.Run(sname+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				out := filepath.Join(dir, "model.onnx")
				res, err := convert.Convert(src, out, v.o)
				if err != nil {
					t.Fatal(err)
				}
				withVocab(t, dir)
				for _, o := range res.Report.Outputs {
					if o.DType != "float32" {
						t.Errorf("output %s is %s; outputs keep float32", o.Name, o.DType)
					}
				}
				for _, in := range res.Report.Inputs {
					if in.DType != "int64" {
						t.Errorf("input %s is %s; inputs keep int64", in.Name, in.DType)
					}
				}
				if sname == "dynamo" && res.ExternalData == "" {
					t.Error("the dynamo graph's external data was not kept external")
				}
				if v.o.FP16 {
					if res.FP16 == nil || res.FP16.FP16Weights < 1_000_000 || !contains(res.FP16.KeptFP32Ops, "Softmax") {
						t.Errorf("fp16 report %+v", res.FP16)
					}
					if strings.HasPrefix(sname, "opset11") || sname == "export-opset13" {
						// The decomposed LayerNorm chain was found and kept in fp32.
						if !contains(res.FP16.KeptFP32Ops, "Pow") || !contains(res.FP16.KeptFP32Ops, "ReduceMean") {
							t.Errorf("decomposed LayerNorm not kept in fp32: %v", res.FP16.KeptFP32Ops)
						}
					}
					if res.Report.ParameterBytes > 3_200_000 {
						t.Errorf("fp16 model stores %d parameter bytes; weights are not fp16", res.Report.ParameterBytes)
					}
				}
				n := len(ref) // every case for the pooled graphs; the rest on a few
				if v.o.Pooling == "" {
					n = fewCases
				}
				got, info := embedFirst(t, dir, n)
				if info.Pooled != (v.o.Pooling != "") {
					t.Errorf("Pooled = %v", info.Pooled)
				}
				maxAbs, minCos := parity(got, ref[:n])
				t.Logf("max |Δ| %.3g, min cosine %.8f over %d cases", maxAbs, minCos, n)
				if v.o.FP16 {
					if maxAbs > 2e-3 || minCos < 0.9999 {
						t.Errorf("fp16: max |Δ| %g, min cosine %g", maxAbs, minCos)
					}
				} else if maxAbs > 1e-5 {
					t.Errorf("max |Δ| %g > 1e-5", maxAbs)
				}
			})
		}
	}
	t.Run("pooled-export/fp16", func(t *testing.T) {
		dir := t.TempDir()
		res, err := convert.Convert(ownPooled, filepath.Join(dir, "model.onnx"), convert.ConvertOptions{FP16: true})
		if err != nil {
			t.Fatal(err)
		}
		if !contains(res.FP16.KeptFP32Ops, "ReduceSum") {
			t.Errorf("the pooling head was not kept in fp32: %+v", res.FP16)
		}
		withVocab(t, dir)
		got, _ := embedFirst(t, dir, fewCases)
		if maxAbs, minCos := parity(got, ref[:fewCases]); maxAbs > 2e-3 || minCos < 0.9999 {
			t.Errorf("max |Δ| %g, min cosine %g", maxAbs, minCos)
		}
	})
}

func contains(v []string, s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}

// writeGraph writes a small hand-made model.
func writeGraph(t *testing.T, g *onnxpb.GraphProto) string {
	t.Helper()
	m := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: g}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "g.onnx")
	os.WriteFile(p, b, 0o644)
	return p
}

func value(name string, elem onnxpb.TensorProto_DataType, dims ...string) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(elem), Shape: shape}}}}
}

func TestConvertRefusals(t *testing.T) {
	fixtureModel := filepath.Join(tiny, "model.onnx")
	notEncoder := writeGraph(t, &onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{value("x", onnxpb.TensorProto_FLOAT, "n")},
		Output: []*onnxpb.ValueInfoProto{value("y", onnxpb.TensorProto_FLOAT, "n")},
		Node:   []*onnxpb.NodeProto{{OpType: "Relu", Name: "relu", Input: []string{"x"}, Output: []string{"y"}}},
	})
	unknownOp := writeGraph(t, &onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{value("input_ids", onnxpb.TensorProto_FLOAT, "b", "s", "h")},
		Output: []*onnxpb.ValueInfoProto{value("last_hidden_state", onnxpb.TensorProto_FLOAT, "b", "s", "h")},
		Node:   []*onnxpb.NodeProto{{OpType: "HardSwish", Name: "the_node", Input: []string{"input_ids"}, Output: []string{"last_hidden_state"}}},
	})
	pooled := filepath.Join(t.TempDir(), "pooled.onnx")
	if _, err := convert.Export(filepath.Join(tiny, "hf"), convert.ExportOptions{Out: pooled}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, in string
		o        convert.ConvertOptions
		want     string
		is       error
	}{
		{"out is in", fixtureModel, convert.ConvertOptions{Pooling: "mean"}, "is the input", nil},
		{"not an encoder", notEncoder, convert.ConvertOptions{Pooling: "mean"}, "not an encoder", convert.ErrNotEncoder},
		{"unknown op for fp16", unknownOp, convert.ConvertOptions{FP16: true}, `node "the_node": op HardSwish`, nil},
		{"already pooled", pooled, convert.ConvertOptions{Pooling: "cls"}, "already pooled", convert.ErrAlreadyPooled},
		{"output that does not exist", fixtureModel, convert.ConvertOptions{Pooling: "mean", Output: "last_hidden"}, `no such output "last_hidden"; the graph's outputs are output`, convert.ErrNoSuchOutput},
		{"output that is not hidden states", filepath.Join(tiny, "dynamo", "model.onnx"), convert.ConvertOptions{Pooling: "mean", Output: "tanh"}, "not [batch, seq, hidden]", nil},
		{"normalize alone", fixtureModel, convert.ConvertOptions{Normalize: true}, "--normalize needs --pooling", nil},
		{"nothing to do", fixtureModel, convert.ConvertOptions{}, "nothing to do", nil},
		{"bad pooling", fixtureModel, convert.ConvertOptions{Pooling: "weighted"}, "not supported", nil},
		{"not onnx", filepath.Join(tiny, "vocab.txt"), convert.ConvertOptions{Pooling: "mean"}, "not an ONNX model", convert.ErrNotONNX},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.onnx")
			if c.name == "out is in" {
				out = c.in
			}
			_, err := convert.Convert(c.in, out, c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err %v is not %v", err, c.is)
			}
			if c.name != "out is in" {
				if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
					t.Errorf("files left behind: %v", ents)
				}
			}
		})
	}
}
