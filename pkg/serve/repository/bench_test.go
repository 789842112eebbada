package repository

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// BenchmarkServeTinyModel measures end-to-end serving throughput of the
// bundled article repository (tiny model, ONNX Runtime CPU, dynamic
// batching over 2 KIND_GPU instances: cuda on a GPU machine, else cpu) at the article's client concurrencies: one
// short Chinese sentence per request. Reports sentences/s and the mean
// batch the batcher formed.
func BenchmarkServeTinyModel(b *testing.B) {
	if engine.Available("cuda") != nil {
		needORT(b) // on a GPU machine KIND_GPU instances run on cuda instead
	}
	m := startManager(b, Config{Root: fixture("serve", "model_repository"), Engine: "auto", EngineOptions: engineThreads()})
	md, err := m.Model("m3e-base-trt", "")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []int{1, 4, 16, 32} {
		b.Run(fmt.Sprintf("clients=%d", c), func(b *testing.B) {
			before := md.Statistics()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := 0; i < c; i++ {
				n := b.N / c
				if i < b.N%c {
					n++
				}
				wg.Add(1)
				go func(n int) {
					defer wg.Done()
					for j := 0; j < n; j++ {
						if _, err := md.Infer(context.Background(), []string{"m3e 是一个中文句向量模型，用于语义检索"}); err != nil {
							b.Error(err)
							return
						}
					}
				}(n)
			}
			wg.Wait()
			b.StopTimer()
			after := md.Statistics()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sentences/s")
			rows := after.GetInferenceCount() - before.GetInferenceCount()
			execs := after.GetExecutionCount() - before.GetExecutionCount()
			b.ReportMetric(float64(rows)/float64(max(1, execs)), "mean_batch")
		})
	}
}

func engineThreads() (o engine.Options) {
	o.Threads = runtime.NumCPU()
	return o
}

// BenchmarkBatcherVsEngine compares, in one run on one machine, the engine
// alone (pre-tokenised batches of 32 short sentences) against the same
// engine behind the repository and dynamic batcher with 32 concurrent
// one-sentence clients, which the batcher turns into batches of 32
// (mean_batch says so), for each engine usable here. The ratio of the two
// sentences/s figures is what the serving core keeps of the engine's
// throughput; tokenisation, queueing and scattering are inside the second.
func BenchmarkBatcherVsEngine(b *testing.B) {
	var kinds []string
	for _, k := range []string{"cpu", "cuda"} {
		if engine.Available(k) == nil {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		needORT(b)
	}
	for _, kind := range kinds {
		batcherVsEngine(b, kind)
	}
}

// batcherVsEngine runs both halves of BenchmarkBatcherVsEngine on one engine.
func batcherVsEngine(b *testing.B, kind string) {
	const clients = 32
	var texts []string
	for len(texts) < clients {
		for _, c := range reference(b) {
			if len([]rune(c.Text)) <= 30 && len(texts) < clients {
				texts = append(texts, c.Text) // short sentences, as in the article's benchmark
			}
		}
	}
	version := fixture("serve", "model_repository", "m3e-base-trt", "1")
	opts := engine.Options{Threads: runtime.NumCPU()}

	b.Run(kind+"/engine-alone", func(b *testing.B) {
		m, err := engine.ResolveModel(version)
		if err != nil {
			b.Fatal(err)
		}
		e, err := engine.Open(kind, m, opts)
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		tok, err := loadTokenizer(m.Tokenizer)
		if err != nil {
			b.Fatal(err)
		}
		batch := &engine.Batch{}
		for _, t := range texts {
			batch.Append(tok.Encode(t))
		}
		if _, err := e.Embed(context.Background(), batch); err != nil { // warm up, as the server does
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		for rows := 0; rows < b.N; rows += clients {
			if _, err := e.Embed(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sentences/s")
	})

	b.Run(kind+"/through-batcher", func(b *testing.B) {
		root := b.TempDir()
		writeModel(b, root, "tiny", `max_batch_size: 32
instance_group [ { count: 1 } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }`)
		if err := os.Symlink(version, filepath.Join(root, "tiny", "1")); err != nil {
			b.Fatal(err)
		}
		m := startManager(b, Config{Root: root, Engine: kind, EngineOptions: opts})
		md, err := m.Model("tiny", "")
		if err != nil {
			b.Fatal(err)
		}
		before := md.Statistics()
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < clients; i++ {
			n := b.N / clients
			if i < b.N%clients {
				n++
			}
			wg.Add(1)
			go func(text string, n int) {
				defer wg.Done()
				for j := 0; j < n; j++ {
					if _, err := md.Infer(context.Background(), []string{text}); err != nil {
						b.Error(err)
						return
					}
				}
			}(texts[i], n)
		}
		wg.Wait()
		b.StopTimer()
		after := md.Statistics()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sentences/s")
		rows := after.GetInferenceCount() - before.GetInferenceCount()
		execs := after.GetExecutionCount() - before.GetExecutionCount()
		b.ReportMetric(float64(rows)/float64(max(1, execs)), "mean_batch")
	})
}
