package convert

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	onnx "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/simple"
	"gonum.org/v1/gonum/graph"
)

// opCounter is an onnx-go backend that records the operations its decoder
// applies, so that onnx-go can serve as an independent reader of the same
// file: its op histogram must equal Inspect's.
type opCounter struct {
	*simple.Graph
	ops map[string]int
}

func (c *opCounter) ApplyOperation(op onnx.Operation, _ ...graph.Node) error {
	c.ops[op.Name]++
	return nil
}

func TestOpsAgreeWithOnnxGo(t *testing.T) {
	path := filepath.Join(fixtures, "dynamo/model.onnx")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &opCounter{Graph: simple.NewSimpleGraph(), ops: map[string]int{}}
	if err := onnx.NewModel(c).UnmarshalBinary(b); err != nil {
		t.Fatalf("onnx-go cannot decode %s: %v", path, err)
	}
	r, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(c.ops, r.Ops) {
		t.Errorf("ops differ:\nonnx-go: %v\ninspect: %v", c.ops, r.Ops)
	}
}
