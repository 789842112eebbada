package engine

import (
	"bytes"
	"context"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestEmbedOutputGolden pins the JSON-lines format of `m3ectl embed`.
func TestEmbedOutputGolden(t *testing.T) {
	e := &Embedder{Tokenizer: testTokenizer(t), Engine: &lengthEngine{}, BatchSize: 2}
	var args, stream bytes.Buffer
	texts := []string{"酒店很好", "", "Hello, world!"}
	if err := e.EmbedAll(context.Background(), texts, &args); err != nil {
		t.Fatal(err)
	}
	in := NewTextScanner(strings.NewReader(strings.Join(texts, "\n")+"\n"), "stdin", false)
	n, err := e.EmbedStream(context.Background(), in, &stream, nil)
	if err != nil || n != len(texts) {
		t.Fatalf("EmbedStream: %d, %v", n, err)
	}
	if args.String() != stream.String() {
		t.Errorf("arguments and stream differ:\n%s\n%s", args.String(), stream.String())
	}
	golden := filepath.Join("..", "..", "testdata", "engine", "embed-lines.golden")
	if *update {
		if err := os.WriteFile(golden, args.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if args.String() != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", args.String(), want)
	}
}

func TestAppendEmbeddingJSONRoundTripsFloat32(t *testing.T) {
	v := []float32{0.1, -1e-8, 3.4028235e38, 1.17549435e-38, 0, -0.33333334}
	line := string(AppendEmbeddingJSON(nil, 7, v))
	want := `{"index":7,"embedding":[0.1,-1e-08,3.4028235e+38,1.1754944e-38,0,-0.33333334]}` + "\n"
	if line != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	if _, err := appendLine(nil, 0, []float32{float32(math.NaN())}); err == nil {
		t.Error("NaN accepted")
	}
}
