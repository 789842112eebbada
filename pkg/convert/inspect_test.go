package convert

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/convert")

const fixtures = "../../testdata/m3e-tiny"

// goldenJSON compares got with testdata/convert/name, rewriting it with -update.
func goldenJSON(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("../../testdata/convert", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/convert -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(want, b) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, b, want)
	}
}

func TestInspectFixtures(t *testing.T) {
	tests := []struct {
		name, model, golden string
		wantExternal        []string
	}{
		{"opset 11 single file", "model.onnx", "inspect-model.json", []string{}},
		{"dynamo opset 18 with external data", "dynamo/model.onnx", "inspect-dynamo.json", []string{"model.onnx.data"}},
	}
	want := Architecture{Type: "bert", Layers: 2, Hidden: 64, Heads: 4, Intermediate: 128, VocabSize: 21128, MaxPositions: 512}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Inspect(filepath.Join(fixtures, tc.model))
			if err != nil {
				t.Fatal(err)
			}
			if r.Architecture == nil || *r.Architecture != want {
				t.Errorf("architecture = %+v, want %+v", r.Architecture, want)
			}
			if len(r.ExternalData) != len(tc.wantExternal) || (len(tc.wantExternal) > 0 && r.ExternalData[0] != tc.wantExternal[0]) {
				t.Errorf("external data = %q, want %q", r.ExternalData, tc.wantExternal)
			}
			if err := r.IsEncoder(); err != nil {
				t.Errorf("IsEncoder: %v", err)
			}
			r.Path = filepath.ToSlash(tc.model) // golden files must not depend on the checkout's location
			goldenJSON(t, tc.golden, r)
		})
	}
}
