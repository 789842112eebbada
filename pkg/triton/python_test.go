package triton

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

type refFile struct {
	Cases []struct {
		Text      string    `json:"text"`
		InputIDs  []int32   `json:"input_ids"`
		Embedding []float32 `json:"embedding"`
	} `json:"cases"`
}

func readReference(t *testing.T) refFile {
	t.Helper()
	var r refFile
	b, err := os.ReadFile(filepath.Join(tinyDir, "reference.json"))
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil || len(r.Cases) != 30 {
		t.Fatalf("reference.json: %v (%d cases)", err, len(r.Cases))
	}
	return r
}

// configJSON is args["model_config"]: the written config.pbtxt as Triton
// turns it into JSON.
func configJSON(t *testing.T, root, model string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, model, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tritonpb.ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	j, err := tritonpb.ConfigJSON(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

// randomTexts mixes scripts, marks, controls, spaces, emoji and special
// tokens, a few past 512 tokens: what the two tokenizers must agree on.
func randomTexts(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 12))
	ranges := [][2]rune{{0x20, 0x7e}, {0x20, 0x7e}, {0x4e00, 0x9fff}, {0x4e00, 0x9fff}, {0x3400, 0x4dbf}, {0x20000, 0x2a6df},
		{0xac00, 0xd7a3}, {0x300, 0x36f}, {0xc0, 0x17f}, {0x400, 0x4ff}, {0x600, 0x6ff}, {0xe00, 0xe7f}, {0x900, 0x97f},
		{0x1f300, 0x1faff}, {0x0, 0x1f}, {0x80, 0x9f}, {0x2000, 0x206f}, {0x3000, 0x303f}, {0xff00, 0xffef}, {0xf900, 0xfaff},
		{0xe000, 0xf8ff}, {0x1d400, 0x1d7ff}, {0x2e80, 0x2fdf}, {0x1100, 0x11ff}, {0x10000, 0x10ffff}}
	specials := []string{"[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[mask]", " ", "\u3000", "\u00a0", "\t\n"}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		length := 1 + rng.IntN(60)
		if i%97 == 0 {
			length = 700
		}
		for j := 0; j < length; j++ {
			if rng.IntN(12) == 0 {
				b.WriteString(specials[rng.IntN(len(specials))])
				continue
			}
			r := ranges[rng.IntN(len(ranges))]
			c := r[0] + rune(rng.IntN(int(r[1]-r[0]+1)))
			if c >= 0xd800 && c <= 0xdfff {
				c = 'x'
			}
			b.WriteRune(c)
		}
		out[i] = b.String()
	}
	return out
}

// tokenizerRepo writes a bls repository around a metadata-only engine: the
// tokenizer files are what the tokenizer tests need.
func tokenizerRepo(t *testing.T) (RepoOptions, *RepoResult) {
	t.Helper()
	o := baseOptions(t)
	o.Encoder, o.ONNX, o.Kind = EncoderONNX, pooledFixture(t), "cpu" // the model's own 512-token window
	res, err := WriteRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	return o, res
}

// TestPythonTokenizerAgreesWithGo executes the generated model.py's
// tokenizer under CPython: ids equal to transformers.BertTokenizer's on the
// fixture's 30 cases and the 253 oracle strings, equal to the Go
// tokenizer's on random strings, and words equal to the tokenizers
// library's on every code point (codepoints.json; the default
// configuration in full, the other three on every eighth block).
func TestPythonTokenizerAgreesWithGo(t *testing.T) {
	t.Parallel() // CPython does the work, in its own processes
	python := debianPython(t)
	o, res := tokenizerRepo(t)
	ref := readReference(t)
	var texts []string
	var want [][]int32
	for _, c := range ref.Cases {
		texts, want = append(texts, c.Text), append(want, c.InputIDs)
	}
	oracle, err := os.ReadFile("../../testdata/tokenizer/oracle_cases.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(oracle)), "\n") {
		var c struct {
			Text string
			IDs  []int32
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		texts, want = append(texts, c.Text), append(want, c.IDs)
	}
	fixed := len(texts)
	tok, err := loadTokenizer(o.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	tok = tok.WithMaxLength(res.MaxLength)
	for _, s := range randomTexts(2000, 1) {
		texts, want = append(texts, s), append(want, tok.Encode(s))
	}
	var got struct{ IDs [][]int32 }
	job := map[string]any{"model_dir": filepath.Join(o.Out, o.Name), "version": 1, "vocab": VocabFile, "spec": TokenizerSpec, "tokenize": texts}
	runModel(t, python, "", job, &got)
	if len(got.IDs) != len(texts) {
		t.Fatalf("%d answers for %d texts", len(got.IDs), len(texts))
	}
	runes, bad := 0, 0
	for i := range texts {
		runes += len([]rune(texts[i]))
		if !slices.Equal(got.IDs[i], want[i]) {
			if bad++; bad <= 5 {
				short := []rune(texts[i])
				short = short[:min(len(short), 40)]
				t.Errorf("text %d %+q…: python %d ids, want %d (first difference at %d)", i, string(short), len(got.IDs[i]), len(want[i]), firstDiff(got.IDs[i], want[i]))
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d texts differ", bad, len(texts))
	}
	t.Logf("ids agree: %d fixed cases (30 reference + %d oracle), %d random strings (%d code points)", fixed, fixed-30, len(texts)-fixed, runes)

	b, err := os.ReadFile("../../testdata/tokenizer/codepoints.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Configs []struct {
			Cfg    map[string]any
			Blocks []string
		}
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for k, g := range golden.Configs {
		cfg := g.Cfg
		var blocks []int
		if k > 0 {
			for i := k; i < len(g.Blocks); i += 8 {
				blocks = append(blocks, i)
			}
			cfg["blocks"] = blocks
		}
		var hashes struct{ Blocks []string }
		runModel(t, python, "", map[string]any{"model_dir": filepath.Join(o.Out, o.Name), "version": 1,
			"vocab": VocabFile, "spec": TokenizerSpec, "words": cfg}, &hashes)
		for i, h := range hashes.Blocks {
			if h == "" {
				continue
			}
			checked++
			if h != g.Blocks[i] {
				t.Errorf("config %v: code points U+%04X–U+%04X: words differ from the tokenizers library", g.Cfg, i*4096, (i+1)*4096-1)
			}
		}
	}
	t.Logf("words agree with the tokenizers library on %d blocks of 4096 code points (%d configurations)", checked, len(golden.Configs))
}

// pooledEngine is fakeEngine for a pooled graph: its output is embeddings.
func pooledEngine(t *testing.T, ver convert.TRTVersion, maxBatch int64) string {
	t.Helper()
	path := fakeEngine(t, ver, maxBatch)
	meta, err := convert.ReadEngineMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	meta.Outputs = []convert.EngineTensor{{Name: "embeddings", ONNXDType: "float32", DType: "float32", Dims: []int64{-1, 64}}}
	meta.Pooled = true
	if err := convert.WriteEngineMeta(convert.MetaPath(path), meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func closeTo(a, b []float32, tol float64) (float64, bool) {
	if len(a) != len(b) {
		return math.Inf(1), false
	}
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst, worst <= tol
}

type wireOut struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

type modelResults struct {
	Results [][]struct {
		Error   string             `json:"error"`
		Outputs map[string]wireOut `json:"outputs"`
	} `json:"results"`
}

// textRequest is one request of the article's shape [n, 1].
func textRequest(texts ...string) map[string]any {
	return map[string]any{"inputs": map[string]any{"text": map[string]any{"shape": []int{len(texts), 1}, "data": texts}}}
}

// TestBLSLayoutExecutes runs the generated bls model.py under CPython
// against the stand-in pb_utils: initialize, then execute on batches of
// several requests with several texts each; each execute sends one BLS
// request with every text, padded once; embeddings within 1e-5 of
// reference.json; a malformed request gets its own error while the others
// in its batch are answered.
func TestBLSLayoutExecutes(t *testing.T) {
	t.Parallel() // CPython does the work, in its own processes
	python := debianPython(t)
	for _, enc := range []struct {
		name string
		set  func(o *RepoOptions)
	}{
		{"onnxruntime", func(o *RepoOptions) { o.Encoder, o.ONNX, o.Kind = EncoderONNX, pooledFixture(t), "cpu" }},
		{"tensorrt-8.6-int32", func(o *RepoOptions) {
			o.Engine, o.ONNX = pooledEngine(t, convert.TRTVersion{Major: 8, Minor: 6, Patch: 1}, 64), pooledFixture(t)
			widenProfile(t, o.Engine, 512)
		}},
	} {
		t.Run(enc.name, func(t *testing.T) {
			o := baseOptions(t)
			o.Name = "m3e-tiny"
			enc.set(&o)
			if _, err := WriteRepository(o); err != nil {
				t.Fatal(err)
			}
			srv, url := startExecServer(t, o.Out)
			ref := readReference(t)
			var texts []string
			for _, c := range ref.Cases {
				texts = append(texts, c.Text)
			}
			batches := [][]map[string]any{
				{textRequest(texts[0]), textRequest(texts[1:4]...), textRequest(texts[4:6]...)},
				{textRequest(texts[6:16]...), {"inputs": map[string]any{"text": map[string]any{"shape": []int{1, 2}, "data": texts[16:18]}}}, textRequest(texts[16:30]...)},
			}
			var res modelResults
			runModel(t, python, url, map[string]any{"model_dir": filepath.Join(o.Out, o.Name), "version": 1,
				"config": configJSON(t, o.Out, o.Name), "batches": batches}, &res)
			var got [][]float32
			for bi, b := range res.Results {
				for ri, r := range b {
					if bi == 1 && ri == 1 {
						if !strings.Contains(r.Error, "shape [N, 1]") {
							t.Fatalf("malformed request answered %+v", r)
						}
						continue
					}
					if r.Error != "" {
						t.Fatalf("batch %d request %d: %s", bi, ri, r.Error)
					}
					e := r.Outputs["embeddings"]
					for i := 0; i < e.Shape[0]; i++ {
						got = append(got, e.Data[i*64:(i+1)*64])
					}
				}
			}
			worst := 0.0
			for i, c := range ref.Cases {
				d, ok := closeTo(got[i], c.Embedding, 1e-5)
				worst = math.Max(worst, d)
				if !ok {
					t.Errorf("case %d %q: max |Δ| %.2e", i, c.Text, d)
				}
			}
			if len(srv.calls) != 2 || srv.calls[0].Inputs[0].Shape[0] != 6 || srv.calls[1].Inputs[0].Shape[0] != 24 {
				t.Fatalf("BLS calls %+v: want one per execute with every text", srv.calls)
			}
			t.Logf("%s encoder: 30 reference texts in 2 executes (6 requests), max |Δ| %.2e", enc.name, worst)
			if o.Encoder == EncoderTensorRT {
				// Without preferred_memory the GPU encoder's output stays on the
				// GPU, and as_numpy() refuses it: the stand-in must catch that.
				py := filepath.Join(o.Out, o.Name, "1", PythonFile)
				src, _ := os.ReadFile(py)
				cut := strings.Replace(string(src), ",\n                                         preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)", "", 1)
				if cut == string(src) {
					t.Fatal("model.py no longer passes preferred_memory as this test expects")
				}
				os.WriteFile(py, []byte(cut), 0o644)
				var res2 modelResults
				runModel(t, python, url, map[string]any{"model_dir": filepath.Join(o.Out, o.Name), "version": 1,
					"config": configJSON(t, o.Out, o.Name), "batches": batches[:1]}, &res2)
				if e := res2.Results[0][0].Error; !strings.Contains(e, "Tensor is stored in GPU") {
					t.Fatalf("BLS without preferred_memory answered %q", e)
				}
			}
		})
	}
}

func firstDiff(a, b []int32) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// widenProfile sets the engine's max sequence length (fakeEngine's is 256).
func widenProfile(t *testing.T, engine string, seq int64) {
	t.Helper()
	meta, err := convert.ReadEngineMeta(engine)
	if err != nil {
		t.Fatal(err)
	}
	meta.MaxSeq = seq
	for i := range meta.Inputs {
		meta.Inputs[i].Max[1] = seq
	}
	if err := convert.WriteEngineMeta(convert.MetaPath(engine), meta); err != nil {
		t.Fatal(err)
	}
}
