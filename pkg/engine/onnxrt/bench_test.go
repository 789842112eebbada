package onnxrt

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// shortChinese are short Chinese sentences (about 15–20 tokens with [CLS] and
// [SEP]), the workload of the product's reference figures.
func shortChinese(n int) []string {
	subjects := []string{"这家酒店", "我们的团队", "今天的天气", "那部电影", "新开的餐厅", "城市的地铁", "这本小说", "公司的产品"}
	preds := []string{"非常干净，服务也很周到", "比想象中好很多，值得推荐", "有点让人失望，下次不会再来", "价格合理，环境也很安静"}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%s。", subjects[i%len(subjects)], preds[(i/len(subjects))%len(preds)])
	}
	return out
}

// BenchmarkEmbedTiny measures sentences per second through the whole CLI path
// (tokenize, sort, ONNX Runtime, pool, normalise) on the m3e-tiny fixture.
func BenchmarkEmbedTiny(b *testing.B) {
	needORT(b)
	m, err := engine.ResolveModel(fixture("m3e-tiny", "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bench := range []struct{ batch, threads int }{{1, 1}, {32, 1}, {1, runtime.NumCPU()}, {32, runtime.NumCPU()}} {
		bs := bench.batch
		b.Run(fmt.Sprintf("batch=%d/threads=%d", bs, bench.threads), func(b *testing.B) {
			emb, err := engine.NewEmbedder(m, engine.EmbedderConfig{Kind: "cpu", BatchSize: bs, Options: engine.Options{Threads: bench.threads}})
			if err != nil {
				b.Fatal(err)
			}
			defer emb.Close()
			texts := shortChinese(bs)
			ctx := context.Background()
			sentences := 0
			for b.Loop() {
				if _, err := emb.EmbedTexts(ctx, texts); err != nil {
					b.Fatal(err)
				}
				sentences += len(texts)
			}
			b.ReportMetric(float64(sentences)/b.Elapsed().Seconds(), "sentences/s")
		})
	}
}
