package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServeOpenAINeighbours is the rest of issue 13's item 4, on the
// audit's queue of 1024 texts: while one client sends a large OpenAI
// request again and again for 2 s (10,000 texts, more than the queue holds; then 800,
// which fits), 16 other clients send one-text requests, and the share of
// those that get 503 is what a big request costs its neighbours (the audit
// found 6% with 10,000 texts).
func BenchmarkServeOpenAINeighbours(b *testing.B) {
	s := serveBinaryQueue(b, 1024)
	small := []byte(`{"model":"m3e-tiny","input":["今天天气不错"]}`)
	for _, n := range []int{10000, 800} {
		in := make([]string, n)
		for i := range in {
			in[i] = "酒店很好"
		}
		big, _ := json.Marshal(map[string]any{"model": "m3e-tiny", "input": in})
		var stop atomic.Bool
		var mu sync.Mutex
		counts := map[int]int{}
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					resp, err := http.Post(s.url+"/v1/embeddings", "application/json", strings.NewReader(string(small)))
					code := -1
					if err == nil {
						code = resp.StatusCode
						resp.Body.Close()
					}
					mu.Lock()
					counts[code]++
					mu.Unlock()
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		// The big client retries at once for 2 s, as one that honours a
		// short Retry-After does.
		bigAnswers := map[int]int{}
		for t0 := time.Now(); time.Since(t0) < 2*time.Second; {
			resp, err := http.Post(s.url+"/v1/embeddings", "application/json", strings.NewReader(string(big)))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			bigAnswers[resp.StatusCode]++
		}
		stop.Store(true)
		wg.Wait()
		total := 0
		for _, c := range counts {
			total += c
		}
		b.Logf("%d texts: big answers %v; small requests %d: %v, 503 share %.1f%%", n, bigAnswers,
			total, counts, 100*float64(counts[http.StatusServiceUnavailable])/float64(max(total, 1)))
		b.ReportMetric(100*float64(counts[http.StatusServiceUnavailable])/float64(max(total, 1)), fmt.Sprintf("small-503%%-%d", n))
	}
}
