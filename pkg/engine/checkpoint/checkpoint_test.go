package checkpoint

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine/checkpoint/checkpointtest"
	"github.com/m3ectl/m3ectl/pkg/engine/safetensors"
)

func fixture(p ...string) string {
	return filepath.Join(append([]string{"..", "..", "..", "testdata"}, p...)...)
}

func vals(n, from int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i+from)/8 - 1
	}
	return out
}

// TestReadsCPythonPickledStateDict reads a checkpoint whose pickle was
// written by CPython's pickler in torch.save's layout: fp32, fp16, bf16 and
// a view into a shared storage (tied weights).
func TestReadsCPythonPickledStateDict(t *testing.T) {
	f, err := Open(fixture("checkpoint", "state-dict.bin"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		dtype string
		shape []int
		want  []float32
	}{
		{"embeddings.word_embeddings.weight", "F32", []int{4, 3}, vals(12, 0)},
		{"encoder.layer.0.output.dense.bias", "F16", []int{3}, vals(3, 0)},
		{"pooler.dense.weight", "BF16", []int{2, 2}, vals(4, 0)},
		{"shared.view", "F32", []int{2, 3}, vals(6, 6)},
	}
	for _, c := range cases {
		tn := f.Tensor(c.name)
		if tn == nil {
			t.Fatalf("%s missing; have %v", c.name, f.Names())
		}
		if tn.DType != c.dtype || !sameShape(tn.Shape, c.shape) {
			t.Errorf("%s: %s %v, want %s %v", c.name, tn.DType, tn.Shape, c.dtype, c.shape)
		}
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s[%d] = %v, want %v", c.name, i, got[i], c.want[i])
			}
		}
	}
	if len(f.Names()) != len(cases) {
		t.Errorf("tensors %v", f.Names())
	}
}

// TestTorchMatchesSafetensors writes the tiny fixture's weights as a
// pytorch_model.bin and reads back the same bytes.
func TestTorchMatchesSafetensors(t *testing.T) {
	st, err := safetensors.Open(fixture("m3e-tiny", "hf", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pytorch_model.bin")
	if err := checkpointtest.WriteTorch(bin, st); err != nil {
		t.Fatal(err)
	}
	pt, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Names() {
		a, b := st.Tensor(n), pt.Tensor(n)
		if b == nil || !bytes.Equal(a.Data, b.Data) || !sameShape(a.Shape, b.Shape) {
			t.Fatalf("%s differs", n)
		}
	}
	bert, err := NewBERT(pt)
	if err != nil || bert.Prefix != "" {
		t.Fatalf("NewBERT: %v %+v", err, bert)
	}
	if _, err := bert.Float32("embeddings.LayerNorm.weight", 64); err != nil {
		t.Fatal(err)
	}
	if _, err := bert.Float32("embeddings.LayerNorm.weight", 32); err == nil {
		t.Fatal("a wrong shape was accepted")
	}
}

func zipOf(t testing.TB, files map[string][]byte) []byte {
	var b bytes.Buffer
	z := zip.NewWriter(&b)
	for n, d := range files {
		w, err := z.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(d)
	}
	z.Close()
	return b.Bytes()
}

// TestRefusesWhatAStateDictDoesNotHold: a pickle that names any other
// global (here os.system, the classic pickle exploit) is refused, not run.
func TestRefusesWhatAStateDictDoesNotHold(t *testing.T) {
	cases := map[string][]byte{
		"os.system":     []byte("\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."),
		"a module":      []byte("\x80\x02ctransformers.models.bert\nBertModel\n)R."),
		"not a dict":    []byte("\x80\x02K\x01."),
		"forged length": []byte("\x80\x02X\xff\xff\xff\x7fab."),
		"no stop":       []byte("\x80\x02}"),
		"bad opcode":    []byte("\x80\x02\xff."),
	}
	for name, pkl := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ReadTorch(zipOf(t, map[string][]byte{"archive/data.pkl": pkl}))
			if !errors.Is(err, ErrTorchFormat) {
				t.Fatalf("err = %v, want ErrTorchFormat", err)
			}
		})
	}
	if _, err := ReadTorch(zipOf(t, map[string][]byte{"archive/constants.pkl": nil, "archive/data.pkl": nil})); !errors.Is(err, ErrTorchFormat) {
		t.Fatalf("TorchScript: %v", err)
	}
}

func TestStorageSizeChecked(t *testing.T) {
	raw, err := os.ReadFile(fixture("checkpoint", "state-dict.bin"))
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		var b bytes.Buffer
		b.ReadFrom(rc)
		files[f.Name] = b.Bytes()
	}
	files["archive/data/0"] = files["archive/data/0"][:8]
	if _, err := ReadTorch(zipOf(t, files)); !errors.Is(err, ErrTorchFormat) {
		t.Fatalf("short storage: %v", err)
	}
}

// FuzzReadTorch: no input crashes the reader or makes it allocate past
// its bounds; every failure is ErrTorchFormat.
func FuzzReadTorch(f *testing.F) {
	raw, err := os.ReadFile(fixture("checkpoint", "state-dict.bin"))
	if err != nil {
		f.Fatal(err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	for _, zf := range zr.File {
		if zf.Name == "archive/data.pkl" {
			rc, _ := zf.Open()
			var b bytes.Buffer
			b.ReadFrom(rc)
			f.Add(b.Bytes())
		}
	}
	f.Add([]byte("\x80\x02}q\x00."))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		files := map[string][]byte{"archive/data.pkl": pkl}
		for _, zf := range zr.File {
			if zf.Name != "archive/data.pkl" {
				rc, _ := zf.Open()
				var b bytes.Buffer
				b.ReadFrom(rc)
				files[zf.Name] = b.Bytes()
			}
		}
		sf, err := ReadTorch(zipOf(t, files))
		if err != nil {
			if !errors.Is(err, ErrTorchFormat) {
				t.Fatalf("error not ErrTorchFormat: %v", err)
			}
			return
		}
		for _, n := range sf.Names() {
			_ = sf.Tensor(n).Elements()
		}
	})
}
