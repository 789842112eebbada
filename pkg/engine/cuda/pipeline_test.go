package cuda

import (
	"context"
	"math"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// TestPipelinedBatchesMatchEmbed runs on the GPU machine: batches submitted
// back to back (two in flight, sizes that grow the buffers while one is in
// flight, graphs and eager launches) give what Embed gives each alone.
func TestPipelinedBatchesMatchEmbed(t *testing.T) {
	needGPU(t)
	for _, c := range []struct {
		name string
		conf Config
	}{{"graphs", Config{CaptureFirst: true}}, {"eager-then-graphs", Config{}}, {"nographs", Config{NoGraphs: true}}} {
		t.Run(c.name, func(t *testing.T) {
			e, _, rows := openTiny(t, c.conf)
			var batches []*engine.Batch
			for i := 0; i < 24; i++ {
				n := 1 + (i*7)%len(rows)
				if i == 20 {
					n = len(rows) // the largest last: the buffers grow with a batch in flight
				}
				sel := make([][]int32, n)
				for j := range sel {
					sel[j] = rows[(i+j)%len(rows)]
				}
				batches = append(batches, engine.NewBatch(sel))
			}
			want := make([][]float32, len(batches))
			ref, _, _ := openTiny(t, c.conf)
			for i, b := range batches {
				var err error
				if want[i], err = ref.Embed(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			tickets := make(chan engine.Ticket, 2)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range batches {
					tk := <-tickets
					if err := e.Nearly(tk); err != nil {
						t.Errorf("batch %d: %v", i, err)
					}
					got, err := e.Await(tk, nil) // frees the slot even when it fails
					if err != nil {
						t.Errorf("batch %d: %v", i, err)
						continue
					}
					if len(got) != len(want[i]) {
						t.Errorf("batch %d: %d floats, want %d", i, len(got), len(want[i]))
						continue
					}
					for j := range got {
						if d := math.Abs(float64(got[j] - want[i][j])); d > 1e-5 {
							t.Errorf("batch %d float %d: pipelined %v, alone %v", i, j, got[j], want[i][j])
							break
						}
					}
				}
			}()
			for i, b := range batches {
				tk, err := e.Submit(context.Background(), b)
				if err != nil {
					t.Errorf("submit %d: %v", i, err)
					tk = engine.Ticket{Slot: -1} // keeps the completer's count
				}
				tickets <- tk
			}
			<-done
		})
	}
}
