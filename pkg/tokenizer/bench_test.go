package tokenizer

import "testing"

// shortChinese are ≈17-token Chinese sentences, the load the project's speed
// figures are quoted for.
var shortChinese = []string{
	"源这篇文章主要为大家介绍了如何",
	"今天天气不错，适合出去散步。",
	"深度学习模型部署需要推理服务",
	"m3e是一个中文句向量模型，效果很好",
	"酒店的服务很周到，房间也很干净",
	"请问去火车站的公交车怎么坐？",
	"这部电影的剧情非常精彩动人",
	"pip清华源 清华大学的镜像",
}

// benchEncode runs EncodeTo over texts on one goroutine and reports
// sentences per second, the figure compared with the Rust tokenizers
// library's ≈30k sentences/s per core.
func benchEncode(b *testing.B, texts []string) {
	tok := fixtureTokenizer(b)
	buf := make([]int32, 0, 512)
	tokens := 0
	for _, s := range texts {
		tokens += len(tok.Encode(s))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		buf, _ = tok.EncodeTo(buf[:0], texts[i%len(texts)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sentences/s")
	b.ReportMetric(float64(tokens)/float64(len(texts)), "tokens/sentence")
}

func BenchmarkEncodeShortChinese(b *testing.B) { benchEncode(b, shortChinese) }

func BenchmarkEncodeEnglish(b *testing.B) {
	benchEncode(b, []string{
		"The quick brown fox jumps over the lazy dog.",
		"email: test@example.com, url: https://example.com/a?b=c",
		"Café naïve façade résumé",
		"TensorRT 8.6.1 + Triton 23.08",
	})
}

func BenchmarkEncodeLong(b *testing.B) {
	benchEncode(b, []string{reference(b)[24].Text})
}

// BenchmarkEncodeOtherScripts covers the general non-ASCII path: kana,
// hangul (decomposed to jamo), Cyrillic, accented Latin, full-width forms.
func BenchmarkEncodeOtherScripts(b *testing.B) {
	benchEncode(b, []string{
		"こんにちは世界、今日はいい天気ですね。",
		"안녕하세요 반갑습니다",
		"Привет мир, как дела?",
		"Café naïve façade résumé à la carte",
		"ＦＵＬＬ－ＷＩＤＴＨ　１２３！",
	})
}
