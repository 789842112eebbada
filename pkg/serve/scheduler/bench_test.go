package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// BenchmarkSchedulerOverhead measures the batcher's own cost per request
// (tokenise, queue, cut, scatter, answer) on an engine that does no work,
// at several client concurrencies. mean_batch is rows per execution.
func BenchmarkSchedulerOverhead(b *testing.B) {
	for _, c := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("clients=%d", c), func(b *testing.B) {
			s, err := New(Config{Name: "bench", Version: "1", MaxBatchSize: 32, Dynamic: true, Logger: quiet},
				fakeEncoder{testMaxLen}, []engine.Engine{&fakeEngine{}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			runClients(b, c, func() error {
				_, _, err := s.Infer(context.Background(), []string{"m3e 是一个中文句向量模型"})
				return err
			})
			b.StopTimer()
			st := s.Statistics()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			b.ReportMetric(float64(st.InferenceCount)/float64(max(1, st.ExecutionCount)), "mean_batch")
		})
	}
}

// runClients spreads b.N calls of f over c goroutines.
func runClients(b *testing.B, c int, f func() error) {
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
				if err := f(); err != nil {
					b.Error(err)
					return
				}
			}
		}(n)
	}
	wg.Wait()
}
