// Package bulk embeds a corpus to a file at the engine's speed: `m3ectl
// embed --output FILE`.
//
// Texts are read in chunks. Each chunk is tokenised on every core, sorted
// by token count and cut into batches of similar length under a token
// budget, so a batch carries almost no padding and its shape repeats (the
// CUDA engine's graphs and GEMM choices are per shape). Batches go to every
// engine at once (one or more per GPU, --device 0,1), results land in the
// chunk's rows in input order, and the writer stores chunks in order. The
// stages overlap: while the engines run chunk k, chunk k+1 is read and
// tokenised and chunk k−1 is written.
package bulk

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// Encoder is the tokenizer as the pipeline needs it; *tokenizer.Tokenizer
// satisfies it. It must be safe for concurrent use.
type Encoder interface {
	EncodeTo(dst []int32, text string) (ids []int32, truncated bool)
}

// Source yields the input texts in order.
type Source interface {
	// Next returns up to max texts; io.EOF (with no texts) at the end.
	Next(max int) ([]string, error)
	// Progress is the input read so far and its total size, in bytes;
	// total is 0 when unknown (a pipe).
	Progress() (done, total int64)
}

// Sink stores embeddings in input order.
type Sink interface {
	// Write stores rows first … first+len(texts)−1: emb holds len(texts)×dim
	// floats, row-major. texts are the inputs, for sinks that keep them.
	Write(first int, texts []string, emb []float32, dim int) error
	// Close finishes the file (header, footer, rename into place).
	Close() error
	// Abort removes whatever was written; the output path is untouched.
	Abort()
}

// Options tune a Run; zero values take the defaults.
type Options struct {
	// BatchTokens caps the tokens of one batch (default 16384: large enough
	// to fill an H200, and one GEMM shape for most batches).
	BatchTokens int
	// BatchRows caps the rows of one batch (default 1024).
	BatchRows int
	// Chunk is the texts read, sorted and written together (default 16384).
	Chunk int
	// FirstChunk is the size of the first chunk; the next ones double up
	// to Chunk (default 2048; M3ECTL_BULK_RAMP=0 makes every chunk Chunk).
	FirstChunk int
	// Workers tokenise a chunk in parallel (default GOMAXPROCS).
	Workers int
	// Progress, when set, is called after each chunk is written.
	Progress func(Stats)
	// AfterRead, when set, is called once every text has been read and
	// tokenised, while the engines still run the last chunk's batches
	// (embed --output hands freed memory back to the OS then, off the
	// job's critical path).
	AfterRead func()
}

// Defaults of Options.
const (
	DefaultBatchTokens = 16384
	DefaultBatchRows   = 1024
	DefaultChunk       = 16384
	DefaultFirstChunk  = 2048
)

// Stats describe a run so far.
type Stats struct {
	Texts, Tokens, Batches int
	Elapsed                time.Duration
	BytesDone, BytesTotal  int64
	// FirstOut is when the first chunk was written, from the start of Run.
	FirstOut time.Duration
	// FirstBatch is when an engine took the first batch and LastResult
	// when the last result came back, from the start of Run; Starved is
	// the time engines waited for a batch in between, summed over engines
	// (reading and tokenising fell behind). Set when Run returns.
	FirstBatch, LastResult, Starved time.Duration
	// Pipelined counts the engines that had their next batch queued while
	// the current one ran (engine.Pipeliner).
	Pipelined int
}

// chunk is one slice of the input in flight.
type chunk struct {
	first   int
	texts   []string
	ids     []int32
	spans   []span // by input index
	out     []float32
	batches []*work
	wg      sync.WaitGroup
	tokens  int
	// bytesDone, bytesTotal: the source's progress once this chunk was read
	// (asked by the reading goroutine alone: sources need not be safe for
	// concurrent use).
	bytesDone, bytesTotal int64
}

type span struct{ start, end int32 }

// work is one engine call: rows of a chunk, sorted by length.
type work struct {
	c    *chunk
	rows []int32 // input indices within the chunk
	b    engine.Batch
}

// Run embeds everything src yields with engines (each used by one goroutine
// of its own) and writes it to sink, which it closes, or aborts on error.
func Run(ctx context.Context, src Source, sink Sink, enc Encoder, engines []engine.Engine, o Options) (Stats, error) {
	if len(engines) == 0 {
		return Stats{}, errors.New("bulk: no engines")
	}
	o = o.withDefaults()
	dim := engines[0].Info().Dim
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) { cancel(err) }

	tokenised := make(chan *chunk, 1)
	toWrite := make(chan *chunk, 2)
	jobs := make(chan *work, 4*len(engines))
	var wg sync.WaitGroup

	// Stage 1: read and tokenise, one chunk ahead of the engines.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(tokenised)
		first, chunks := 0, 0
		for ctx.Err() == nil {
			// The first chunks are smaller (FirstChunk, doubling up to
			// Chunk): the engines wait for the first one to be read and
			// tokenised, and the 24 x 1024 model's first full chunk took
			// ~45 ms of the H200 job's 16 cores before the first batch.
			size := min(o.Chunk, o.FirstChunk<<min(chunks, 20))
			chunks++
			texts, err := src.Next(size)
			if len(texts) > 0 {
				c := prepare(texts, first, enc, dim, o)
				c.bytesDone, c.bytesTotal = src.Progress()
				first += len(texts)
				select {
				case tokenised <- c:
				case <-ctx.Done():
					return
				}
			}
			if errors.Is(err, io.EOF) {
				if o.AfterRead != nil {
					o.AfterRead()
				}
				return
			}
			if err != nil {
				fail(err)
				return
			}
		}
	}()
	// Stage 2: hand the batches to the engines, chunk after chunk without
	// waiting for the previous one to finish, so no engine idles at a
	// chunk's end.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(toWrite)
		defer close(jobs)
		for c := range tokenised {
			c.wg.Add(len(c.batches))
			select {
			case toWrite <- c:
			case <-ctx.Done():
				c.wg.Add(-len(c.batches))
				return
			}
			for _, w := range c.batches {
				select {
				case jobs <- w:
				case <-ctx.Done():
					c.wg.Add(-1)
				}
			}
		}
	}()
	tm := &engineTimes{start: start}
	for _, e := range engines {
		wg.Add(1)
		go func(e engine.Engine) {
			defer wg.Done()
			runEngine(ctx, e, jobs, dim, tm, fail)
		}(e)
	}
	// Stage 3 (this goroutine): write chunks in order.
	var st Stats
	var werr error
	for c := range toWrite {
		c.wg.Wait()
		if werr != nil || ctx.Err() != nil {
			continue
		}
		if werr = sink.Write(c.first, c.texts, c.out, dim); werr != nil {
			fail(werr)
			continue
		}
		if st.Texts == 0 {
			st.FirstOut = time.Since(start)
		}
		st.Texts += len(c.texts)
		st.Tokens += c.tokens
		st.Batches += len(c.batches)
		st.Elapsed = time.Since(start)
		st.BytesDone, st.BytesTotal = c.bytesDone, c.bytesTotal
		if o.Progress != nil {
			o.Progress(st)
		}
	}
	wg.Wait()
	st.FirstBatch, st.LastResult, st.Starved = time.Duration(tm.first.Load()), time.Duration(tm.last.Load()), time.Duration(tm.starved.Load())
	st.Pipelined = int(tm.pipelined.Load())
	if err := context.Cause(ctx); err != nil {
		sink.Abort()
		return st, err
	}
	if err := sink.Close(); err != nil {
		return st, err
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

func (o Options) withDefaults() Options {
	if o.BatchTokens <= 0 {
		o.BatchTokens = DefaultBatchTokens
	}
	if o.BatchRows <= 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	if o.FirstChunk <= 0 || o.FirstChunk > o.Chunk {
		o.FirstChunk = min(DefaultFirstChunk, o.Chunk)
	}
	if os.Getenv("M3ECTL_BULK_RAMP") == "0" {
		o.FirstChunk = o.Chunk
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// prepare tokenises a chunk on o.Workers goroutines, sorts its rows by
// length and cuts them into batches.
func prepare(texts []string, first int, enc Encoder, dim int, o Options) *chunk {
	c := &chunk{first: first, texts: texts, spans: make([]span, len(texts)), out: make([]float32, len(texts)*dim)}
	parts := make([][]int32, o.Workers)
	per := (len(texts) + o.Workers - 1) / o.Workers
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*per, min((p+1)*per, len(texts))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ids []int32
			for i := lo; i < hi; i++ {
				s := int32(len(ids))
				ids, _ = enc.EncodeTo(ids, texts[i])
				c.spans[i] = span{s, int32(len(ids))}
			}
			parts[p] = ids
		}()
	}
	wg.Wait()
	// One id buffer for the chunk: spans are rebased onto it.
	n := 0
	for _, ids := range parts {
		n += len(ids)
	}
	c.ids = make([]int32, 0, n)
	for p, ids := range parts {
		base := int32(len(c.ids))
		c.ids = append(c.ids, ids...)
		lo, hi := p*per, min((p+1)*per, len(texts))
		for i := lo; i < hi; i++ {
			c.spans[i].start += base
			c.spans[i].end += base
		}
	}
	c.tokens = n
	order := make([]int32, len(texts))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return int(c.spans[a].end-c.spans[a].start) - int(c.spans[b].end-c.spans[b].start)
	})
	var w *work
	tokens := 0
	for _, r := range order {
		l := int(c.spans[r].end - c.spans[r].start)
		if w == nil || len(w.rows) >= o.BatchRows || (tokens+l > o.BatchTokens && len(w.rows) > 0) {
			w = &work{c: c}
			c.batches = append(c.batches, w)
			tokens = 0
		}
		w.rows = append(w.rows, r)
		w.b.Append(c.ids[c.spans[r].start:c.spans[r].end])
		tokens += l
	}
	return c
}
