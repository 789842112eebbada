package convert_test

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/engine/checkpoint"
	"github.com/m3ectl/m3ectl/pkg/engine/checkpoint/checkpointtest"
	"github.com/m3ectl/m3ectl/pkg/engine/safetensors"
	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

// -base-shaped runs the m3e-base-shaped parity check (12 layers, hidden 768,
// 12 heads, a 440 MB random-weight checkpoint): too big for make test.
//
//	go test ./pkg/convert -run TestBaseShapedParity -base-shaped -v -timeout 30m
var baseShaped = flag.Bool("base-shaped", false, "run the m3e-base-shaped export / fp16 parity check")

type shape struct{ layers, hidden, heads, inter, vocab, positions int }

// writeRandomBERT writes a Hugging Face folder with BERT's initialisation
// (normal(0, 0.02) matrices and embeddings, LayerNorm γ≈1, β≈0) and the
// fixture's tokenizer and sentence-transformers configs.
func writeRandomBERT(t *testing.T, s shape, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 768))
	var ts []*safetensors.Tensor
	add := func(name string, scale, offset float64, dims ...int) {
		n := 1
		for _, d := range dims {
			n *= d
		}
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(offset+rng.NormFloat64()*scale)))
		}
		ts = append(ts, &safetensors.Tensor{Name: name, DType: "F32", Shape: dims, Data: b})
	}
	H := s.hidden
	add("embeddings.word_embeddings.weight", 0.02, 0, s.vocab, H)
	add("embeddings.position_embeddings.weight", 0.02, 0, s.positions, H)
	add("embeddings.token_type_embeddings.weight", 0.02, 0, 2, H)
	add("embeddings.LayerNorm.weight", 0.05, 1, H)
	add("embeddings.LayerNorm.bias", 0.02, 0, H)
	for l := 0; l < s.layers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		for _, n := range []string{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"} {
			add(p+n+".weight", 0.02, 0, H, H)
			add(p+n+".bias", 0.02, 0, H)
		}
		add(p+"intermediate.dense.weight", 0.02, 0, s.inter, H)
		add(p+"intermediate.dense.bias", 0.02, 0, s.inter)
		add(p+"output.dense.weight", 0.02, 0, H, s.inter)
		add(p+"output.dense.bias", 0.02, 0, H)
		for _, n := range []string{"attention.output.LayerNorm", "output.LayerNorm"} {
			add(p+n+".weight", 0.05, 1, H)
			add(p+n+".bias", 0.02, 0, H)
		}
	}
	f, err := safetensors.New(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpointtest.WriteSafetensors(filepath.Join(dir, "model.safetensors"), f); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"model_type": "bert", "hidden_size": H, "num_hidden_layers": s.layers, "num_attention_heads": s.heads,
		"intermediate_size": s.inter, "vocab_size": s.vocab, "max_position_embeddings": s.positions, "type_vocab_size": 2,
		"layer_norm_eps": 1e-12, "hidden_act": "gelu"})
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	for _, f := range []string{"vocab.txt", "tokenizer_config.json", "modules.json"} {
		copyInto(t, filepath.Join(tiny, "hf", f), filepath.Join(dir, f))
	}
	os.MkdirAll(filepath.Join(dir, "1_Pooling"), 0o755)
	os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(fmt.Sprintf(`{"word_embedding_dimension": %d, "pooling_mode_mean_tokens": true}`, H)), 0o644)
	os.MkdirAll(filepath.Join(dir, "2_Normalize"), 0o755)
}

func copyInto(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(to, b, 0o644)
}

// referenceBERT is an independent float64 forward pass of BertModel +
// mean pooling + L2 normalisation, straight from the checkpoint: the
// yardstick the exported graph is measured against.
func referenceBERT(t *testing.T, w *checkpoint.BERT, s shape, ids []int32) []float64 {
	get := func(name string, dims ...int) []float64 {
		v, err := w.Float32(name, dims...)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	H, n := s.hidden, len(ids)
	ln := func(x []float64, prefix string) {
		g, b := get(prefix+".weight", H), get(prefix+".bias", H)
		for r := 0; r < n; r++ {
			row := x[r*H : (r+1)*H]
			var mean, v float64
			for _, a := range row {
				mean += a
			}
			mean /= float64(H)
			for _, a := range row {
				v += (a - mean) * (a - mean)
			}
			v /= float64(H)
			for i := range row {
				row[i] = (row[i]-mean)/math.Sqrt(v+1e-12)*g[i] + b[i]
			}
		}
	}
	linear := func(x []float64, in, out int, prefix string) []float64 {
		W, b := get(prefix+".weight", out, in), get(prefix+".bias", out)
		y := make([]float64, n*out)
		for r := 0; r < n; r++ {
			for o := 0; o < out; o++ {
				acc := b[o]
				wr, xr := W[o*in:(o+1)*in], x[r*in:(r+1)*in]
				for i := range wr {
					acc += wr[i] * xr[i]
				}
				y[r*out+o] = acc
			}
		}
		return y
	}
	word, pos, typ := get("embeddings.word_embeddings.weight", s.vocab, H), get("embeddings.position_embeddings.weight", s.positions, H), get("embeddings.token_type_embeddings.weight", 2, H)
	x := make([]float64, n*H)
	for r, id := range ids {
		for i := 0; i < H; i++ {
			x[r*H+i] = word[int(id)*H+i] + pos[r*H+i] + typ[i]
		}
	}
	ln(x, "embeddings.LayerNorm")
	dh := H / s.heads
	for l := 0; l < s.layers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		q, k, v := linear(x, H, H, p+"attention.self.query"), linear(x, H, H, p+"attention.self.key"), linear(x, H, H, p+"attention.self.value")
		ctx := make([]float64, n*H)
		for h := 0; h < s.heads; h++ {
			for i := 0; i < n; i++ {
				scores := make([]float64, n)
				mx := math.Inf(-1)
				for j := 0; j < n; j++ {
					var d float64
					for e := 0; e < dh; e++ {
						d += q[i*H+h*dh+e] * k[j*H+h*dh+e]
					}
					scores[j] = d / math.Sqrt(float64(dh))
					mx = math.Max(mx, scores[j])
				}
				var sum float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					sum += scores[j]
				}
				for j := range scores {
					for e := 0; e < dh; e++ {
						ctx[i*H+h*dh+e] += scores[j] / sum * v[j*H+h*dh+e]
					}
				}
			}
		}
		a := linear(ctx, H, H, p+"attention.output.dense")
		for i := range a {
			a[i] += x[i]
		}
		ln(a, p+"attention.output.LayerNorm")
		x = a
		h := linear(x, H, s.inter, p+"intermediate.dense")
		for i, z := range h {
			h[i] = 0.5 * z * (1 + math.Erf(z/math.Sqrt2))
		}
		o := linear(h, s.inter, H, p+"output.dense")
		for i := range o {
			o[i] += x[i]
		}
		ln(o, p+"output.LayerNorm")
		x = o
	}
	out := make([]float64, H)
	for r := 0; r < n; r++ {
		for i := 0; i < H; i++ {
			out[i] += x[r*H+i] / float64(n)
		}
	}
	var norm float64
	for _, a := range out {
		norm += a * a
	}
	for i := range out {
		out[i] /= math.Sqrt(norm)
	}
	return out
}

func toF32(v [][]float64) [][]float32 {
	out := make([][]float32, len(v))
	for i, r := range v {
		out[i] = make([]float32, len(r))
		for j, x := range r {
			out[i][j] = float32(x)
		}
	}
	return out
}

// TestBaseShapedParity: export (pooled and --pooling none + the engine's
// pooling) against the float64 reference, and convert --fp16 against the
// fp32 export, on an m3e-base-shaped model. Also runs on the tiny shape
// without -base-shaped, cheaply, so the reference itself stays tested.
func TestBaseShapedParity(t *testing.T) {
	s := shape{layers: 2, hidden: 64, heads: 4, inter: 128, vocab: 21128, positions: 512}
	if *baseShaped {
		s = shape{layers: 12, hidden: 768, heads: 12, inter: 3072, vocab: 21128, positions: 512}
	}
	dir := t.TempDir()
	writeRandomBERT(t, s, dir)
	f, err := checkpoint.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := checkpoint.NewBERT(f)
	tok, err := tokenizer.Load(filepath.Join(dir, "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 3 // the tiny shape only keeps the float64 reference itself tested
	if *baseShaped {
		n = 8
	}
	texts := []string{}
	for _, c := range reference(t)[:n] {
		texts = append(texts, c.Text)
	}
	var ref [][]float64
	for _, tx := range texts {
		ref = append(ref, referenceBERT(t, w, s, tok.Encode(tx)))
	}
	want := toF32(ref)
	pooled := filepath.Join(t.TempDir(), "pooled", "model.onnx")
	if _, err := convert.Export(dir, convert.ExportOptions{Out: pooled}); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(t.TempDir(), "none", "model.onnx")
	if _, err := convert.Export(dir, convert.ExportOptions{Out: none, Pooling: "none"}); err != nil {
		t.Fatal(err)
	}
	fp16 := filepath.Join(t.TempDir(), "fp16", "model.onnx")
	if _, err := convert.Convert(pooled, fp16, convert.ConvertOptions{FP16: true}); err != nil {
		t.Fatal(err)
	}
	copyInto(t, filepath.Join(dir, "vocab.txt"), filepath.Join(filepath.Dir(fp16), "vocab.txt"))
	embed := func(model string) [][]float32 {
		needORT(t)
		got, _ := embedTexts(t, model, texts)
		return got
	}
	gotPooled, gotNone, gotFP16 := embed(pooled), embed(none), embed(fp16)
	report := func(name string, a, b [][]float32, maxAbs, minCos float64) {
		d, c := parity(a, b)
		t.Logf("%d layers, hidden %d: %-28s max |Δ| %.3g, min cosine %.8f (%d sentences)", s.layers, s.hidden, name, d, c, len(texts))
		if d > maxAbs || c < minCos {
			t.Errorf("%s: max |Δ| %g (≤ %g), min cosine %g (≥ %g)", name, d, maxAbs, c, minCos)
		}
	}
	report("export pooled vs float64", gotPooled, want, 1e-5, 0.99999)
	report("export none+engine vs float64", gotNone, want, 1e-5, 0.99999)
	report("convert --fp16 vs export", gotFP16, gotPooled, 2e-3, 0.9999)
	report("convert --fp16 vs float64", gotFP16, want, 2e-3, 0.9999)
}
