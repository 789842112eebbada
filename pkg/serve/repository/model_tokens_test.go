package repository

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

func TestEmbedTokensNeedsTokenStates(t *testing.T) {
	needORT(t)
	// The bundled ONNX outputs last_hidden_state: token states come back,
	// one per token of each row.
	m := startManager(t, Config{SinglePath: fixture("m3e-tiny", "model.onnx")})
	md, err := m.Model("m3e-tiny", "")
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]int32{md.Tokenizer().Encode("酒店很好"), md.Tokenizer().Encode("你好")}
	states, err := md.EmbedTokens(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || len(states[0]) != len(rows[0]) || len(states[1]) != len(rows[1]) || len(states[0][0]) != md.Dim() {
		t.Fatalf("shapes: %d rows, %d and %d tokens", len(states), len(states[0]), len(states[1]))
	}

	// A graph that pools itself (m3ectl export's default) has none: the
	// error says so, for TEI's 424.
	out := filepath.Join(t.TempDir(), "pooled", "model.onnx")
	if _, err := convert.Export(fixture("m3e-tiny", "hf"), convert.ExportOptions{Out: out, Pooling: "auto"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
	mp := startManager(t, Config{SinglePath: out})
	pd, err := mp.Model("pooled", "")
	if err != nil {
		t.Fatalf("%v %+v", err, mp.Index(false))
	}
	_, err = pd.EmbedTokens(context.Background(), rows)
	if kindOf(err) != Internal || !strings.Contains(err.Error(), "pools itself") {
		t.Fatalf("pooled graph: %v", err)
	}
}
