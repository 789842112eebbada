package cuda

import (
	"math/bits"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// bucket is a padded batch shape: T tokens and room for N rows. Every batch
// runs as the bucket just above its token count, so a few CUDA graphs cover
// all shapes; the extra tokens (id 0, belonging to no row) cost at most 1/8
// more GEMM work and are never read by attention or pooling. N is T, the
// most rows T tokens can hold, so that the bucket (and its graphs) depend
// on the token count alone: keyed by rows too, a server saw hundreds of
// (tokens, rows) shapes, and every new one cost a GEMM check, an eager run
// and two graph captures on the instance's critical path.
type bucket struct{ T, N int }

// roundBucket rounds x up to a multiple of 1/8 of its power of two (at most
// 12.5% waste), and to at least min.
func roundBucket(x, min int) int {
	if x <= min {
		return min
	}
	step := 1 << max(0, bits.Len(uint(x))-1-3)
	return (x + step - 1) / step * step
}

func bucketFor(tokens, rows int) bucket {
	t := roundBucket(max(tokens, rows), 16)
	return bucket{T: t, N: t}
}

// tiles bounds the attention tiles fill makes for any batch of at most T
// tokens: within a run of packed short rows two consecutive tiles hold more
// than tileQueries tokens together (the second began with the row that did
// not fit the first), so such a run of c tiles over L tokens has
// c < 2L/128 + 1; each long row (> 128 tokens, so fewer than T_long/128 of
// them) takes ceil(len/128) < len/128 + 1 tiles and may end a run. In all
// fewer than 3T/128 + 1 tiles.
func (b bucket) tiles() int { return 3*((b.T+tileQueries-1)/tileQueries) + 1 }

// inputInts is the size of the packed int32 input block: ids, positions,
// row offsets, attention tiles and the two counts (rows, tiles).
func (b bucket) inputInts() int { return 2*b.T + b.N + 1 + 4*b.tiles() + 2 }

// buffers are the engine's device memory, allocated once and grown (never
// shrunk) when a larger bucket arrives. Every batch runs on the engine's one
// stream, so batches in flight one behind the other share them; only the
// pinned host buffers are per slot (slot).
type buffers struct {
	capT, capIn, capRows                 int // capRows: rows of out
	dIn, hidden, qkv, ctx, tmp, ffn, out devPtr
	queue                                devPtr // attn_mma's two work-queue counters, zero between launches
}

func (b *buffers) free() {
	for _, p := range []devPtr{b.dIn, b.hidden, b.qkv, b.ctx, b.tmp, b.ffn, b.out, b.queue} {
		memFree(p)
	}
	*b = buffers{}
}

// fits says whether a batch of bucket bk and rows rows fits without growing.
func (b *buffers) fits(bk bucket, rows int) bool {
	return bk.T <= b.capT && rows <= b.capRows && bk.inputInts() <= b.capIn
}

// ensure grows the buffers to hold a batch of bucket bk and rows rows; the
// pooled output is sized by rows (at least twice what it was, so that a
// server's batches settle after a few growths), the rest by tokens.
// Growing waits for the stream and drops the graphs, which name the old
// buffers.
func (b *buffers) ensure(e *Engine, bk bucket, rows int) error {
	if b.fits(bk, rows) {
		return nil
	}
	call(drv.streamSynchronize, e.l.stream)
	e.dropGraphs()
	capT, capRows := max(bk.T, b.capT), b.capRows
	if rows > capRows {
		capRows = min(max(rows, 2*capRows), capT)
	}
	b.free()
	b.capT, b.capRows = capT, capRows
	b.capIn = max(bucket{capT, capT}.inputInts(), bk.inputInts())
	H, I, el := e.cfg.Hidden, e.cfg.Intermediate, e.elem
	var err error
	alloc := func(dst *devPtr, n int) {
		if err == nil {
			*dst, err = memAlloc(n)
		}
	}
	alloc(&b.dIn, 4*b.capIn)
	alloc(&b.hidden, capT*H*el)
	alloc(&b.qkv, capT*3*H*el)
	alloc(&b.ctx, capT*H*el)
	alloc(&b.tmp, capT*H*el)
	alloc(&b.ffn, capT*I*el)
	alloc(&b.out, capRows*H*4)
	alloc(&b.queue, 256)
	if err == nil {
		err = cuCheck(call(drv.memsetD8Async, uintptr(b.queue), 0, 256, e.l.stream), "cuMemsetD8Async")
	}
	if err == nil {
		err = cuCheck(call(drv.streamSynchronize, e.l.stream), "cuStreamSynchronize")
	}
	if err != nil {
		b.free()
	}
	return err
}

// layout gives the byte offsets of the input block's parts for bucket bk.
func layout(bk bucket) (pos, offs, tiles, counts int) {
	pos = 4 * bk.T
	offs = pos + 4*bk.T
	tiles = offs + 4*(bk.N+1)
	counts = tiles + 16*bk.tiles()
	return
}

// attnTile is the query block a tile covers: queries qLen tokens from
// qStart, attending to kLen keys from kStart (kernels.cu).
const tileQueries = 128

// fillInput writes batch b into the pinned input block in, padded to bucket
// bk, and plans the attention tiles: rows longer than 128 tokens get one
// tile per 128 queries; shorter rows are packed whole into shared tiles of
// up to 128.
func fillInput(in []int32, batch *engine.Batch, bk bucket) {
	pos, offs, tiles, counts := layout(bk)
	ids := in[:bk.T]
	n := copy(ids, batch.IDs)
	clear(ids[n:])
	p := in[pos/4 : pos/4+bk.T]
	o := in[offs/4 : offs/4+bk.N+1]
	tl := in[tiles/4 : tiles/4+4*bk.tiles()]
	nt := 0
	add := func(qs, ql, ks, kl int32) {
		tl[4*nt], tl[4*nt+1], tl[4*nt+2], tl[4*nt+3] = qs, ql, ks, kl
		nt++
	}
	var packStart, packLen int32 // the open tile of packed short rows
	flush := func() {
		if packLen > 0 {
			add(packStart, packLen, packStart, packLen)
			packLen = 0
		}
	}
	rows := batch.Rows()
	for r := 0; r < rows; r++ {
		s, e := batch.Offsets[r], batch.Offsets[r+1]
		for i := s; i < e; i++ {
			p[i] = i - s
		}
		l := e - s
		if l <= tileQueries {
			if packLen+l > tileQueries {
				flush()
			}
			if packLen == 0 {
				packStart = s
			}
			packLen += l
			continue
		}
		flush()
		for q := int32(0); q < l; q += tileQueries {
			add(s+q, min(tileQueries, l-q), s, l)
		}
	}
	flush()
	clear(p[n:])
	copy(o, batch.Offsets)
	for r := rows + 1; r <= bk.N; r++ {
		o[r] = batch.Offsets[rows]
	}
	in[counts/4], in[counts/4+1] = int32(rows), int32(nt)
}

func (b *buffers) inputBytes(bk bucket) int { return 4 * bk.inputInts() }
