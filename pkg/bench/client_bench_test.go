package bench

import (
	"context"
	"testing"
)

// BenchmarkClient measures one request round trip of each protocol client
// against the canned in-process server: the client's own cost per request
// (run with -benchmem for allocations).
func BenchmarkClient(b *testing.B) {
	for _, proto := range Protocols {
		b.Run(proto, func(b *testing.B) {
			var url string
			if proto == ProtoKServeGRPC {
				s, err := startCannedGRPC()
				if err != nil {
					b.Fatal(err)
				}
				defer s.close()
				url = s.url
			} else {
				s, err := StartCannedServer()
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				url = s.URL
			}
			cl, err := NewClient(proto, ClientOptions{URL: url, Model: "canned", Groups: Groups(DefaultTexts, 1), MaxConns: 8})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := cl.Do(ctx, i); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
