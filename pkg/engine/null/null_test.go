package null

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// baseShaped writes a model folder of m3e-base's shape (768 wide) with the
// tiny model's tokenizer: all the null engine reads.
func baseShaped(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `{"model_type":"bert","hidden_size":768,"vocab_size":21128,"max_position_embeddings":512}`
	for name, data := range map[string]string{"config.json": cfg, "model.onnx": "not read"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vocab, err := os.ReadFile("../../../testdata/m3e-tiny/vocab.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), vocab, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestNullEngine(t *testing.T) {
	m, err := engine.ResolveModel(baseShaped(t))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(Backend, m, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	info := e.Info()
	if info.Backend != Backend || info.Dim != 768 || info.MaxSeqLen != 512 || info.VocabSize != 21128 {
		t.Fatalf("info %+v", info)
	}
	b := engine.NewBatch([][]int32{{101, 2000, 102}, {101, 3000, 3001, 102}, {101, 2000, 102}})
	out, err := e.Embed(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3*768 {
		t.Fatalf("%d values", len(out))
	}
	row := func(i int) []float32 { return out[i*768 : (i+1)*768] }
	for i := 0; i < 3; i++ {
		var sum float64
		for _, v := range row(i) {
			sum += float64(v) * float64(v)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("row %d: |v|^2 = %v, want 1", i, sum)
		}
	}
	if row(0)[0] != row(2)[0] || row(0)[5] != row(2)[5] {
		t.Error("equal rows got different vectors")
	}
	if row(0)[0] == row(1)[0] && row(0)[1] == row(1)[1] {
		t.Error("different rows got the same vector")
	}
	dst := make([]float32, 4*768)
	into, err := e.(engine.IntoEmbedder).EmbedInto(context.Background(), b, dst)
	if err != nil || len(into) != 3*768 || &into[0] != &dst[0] || into[768] != out[768] {
		t.Fatalf("EmbedInto: len %d err %v", len(into), err)
	}
	if _, err := e.Embed(context.Background(), engine.NewBatch([][]int32{{101, 99999, 102}})); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("an id outside the vocabulary: %v", err)
	}
}

func TestNullEngineNeedsWidth(t *testing.T) {
	if _, err := Open(&engine.Model{Path: "x"}, engine.Options{}); err == nil || !strings.Contains(err.Error(), "width") {
		t.Fatalf("no width: %v", err)
	}
}
