package repository

import (
	"context"
	"fmt"
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
	m := startManager(b, Config{Root: fixture("serve", "model_repository"), EngineOptions: engineThreads()})
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
