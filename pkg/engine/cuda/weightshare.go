package cuda

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Engines of one process that open the same checkpoint share its weights:
// engines opening at the same time share one conversion on the host (embed
// --output opens two per GPU at once, and each converting the 24 x 1024
// model's 1.3 GB on its own was most of the job's start), and engines on
// the same GPU share one device copy (they are read-only; each engine's
// stream only reads them), uploaded once and freed with the last engine.
// M3ECTL_CUDA_SHARE_WEIGHTS=0 gives every engine its own, as before.

// weightKey names one checkpoint file converted one way.
type weightKey struct {
	path string
	fp16 bool
	size int64
	mod  time.Time
}

func weightKeyFor(path string, fp16 bool) weightKey {
	k := weightKey{path: path, fp16: fp16}
	if st, err := os.Stat(path); err == nil {
		k.size, k.mod = st.Size(), st.ModTime()
	}
	return k
}

// hostFlight is one conversion that engines opening together wait for; it
// is forgotten (and its bytes with it) once the last of them has uploaded.
type hostFlight struct {
	done  chan struct{}
	h     *hostWeights
	err   error
	took  time.Duration
	users int
}

// devShare is one GPU's copy of a checkpoint's weights.
type devShare struct {
	mu   sync.Mutex // held while the first engine uploads
	w    *weights
	refs int
}

type devKey struct {
	weightKey
	dev int
}

var shared = struct {
	mu      sync.Mutex
	flights map[weightKey]*hostFlight
	devs    map[devKey]*devShare
}{flights: map[weightKey]*hostFlight{}, devs: map[devKey]*devShare{}}

func shareWeights() bool { return os.Getenv("M3ECTL_CUDA_SHARE_WEIGHTS") != "0" }

// preparedWeights is what OpenConfig's weight goroutine hands init: the
// host conversion (nil when the GPU already holds these weights) and how to
// let go of it.
type preparedWeights struct {
	h       *hostWeights
	err     error
	took    time.Duration
	key     weightKey
	shared  bool
	release func()
}

// prepareShared converts the checkpoint at path, or joins a conversion of
// it already under way in this process, or — when GPU dev already holds
// these weights — converts nothing.
func prepareShared(path string, c bertConfig, fp16 bool, dev int) preparedWeights {
	t := time.Now()
	if !shareWeights() {
		h, err := prepareWeights(path, c, fp16)
		return preparedWeights{h: h, err: err, took: time.Since(t), release: func() {}}
	}
	key := weightKeyFor(path, fp16)
	shared.mu.Lock()
	if ds := shared.devs[devKey{key, dev}]; ds != nil && ds.w != nil {
		shared.mu.Unlock()
		return preparedWeights{key: key, shared: true, release: func() {}}
	}
	f := shared.flights[key]
	first := f == nil
	if first {
		f = &hostFlight{done: make(chan struct{})}
		shared.flights[key] = f
	}
	f.users++
	shared.mu.Unlock()
	if first {
		f.h, f.err = prepareWeights(path, c, fp16)
		f.took = time.Since(t)
		close(f.done)
	}
	<-f.done
	took := f.took
	if !first {
		took = time.Since(t) // waited for the other engine's conversion
	}
	var once sync.Once
	return preparedWeights{h: f.h, err: f.err, took: took, key: key, shared: true, release: func() {
		once.Do(func() {
			shared.mu.Lock()
			if f.users--; f.users == 0 && shared.flights[key] == f {
				delete(shared.flights, key)
			}
			shared.mu.Unlock()
		})
	}}
}

// deviceWeights gives engine e the weights on its GPU: the copy another
// engine of this process already put there, or a fresh upload of pw's
// conversion (converting now if pw has none: the copy it counted on was
// freed meanwhile). uploaded says whether this call copied them.
func (e *Engine) deviceWeights(pw preparedWeights, path string, dev int) (w *weights, uploaded bool, err error) {
	defer pw.release()
	if !pw.shared {
		w, err = pw.h.upload()
		return w, true, err
	}
	k := devKey{pw.key, dev}
	shared.mu.Lock()
	ds := shared.devs[k]
	if ds == nil {
		ds = &devShare{}
		shared.devs[k] = ds
	}
	ds.refs++ // held from here, so the entry outlives the upload below
	shared.mu.Unlock()
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.w == nil {
		h := pw.h
		if h == nil {
			if h, err = prepareWeights(path, e.cfg, !e.conf.FP32); err != nil {
				e.dropShare(k, ds)
				return nil, false, err
			}
		}
		if ds.w, err = h.upload(); err != nil {
			e.dropShare(k, ds)
			return nil, false, err
		}
		uploaded = true
	}
	e.share = &k
	return ds.w, uploaded, nil
}

// dropShare lets go of one reference to ds and frees the GPU copy with the
// last one.
func (e *Engine) dropShare(k devKey, ds *devShare) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if ds.refs--; ds.refs > 0 {
		return
	}
	if ds.w != nil {
		ds.w.free()
		ds.w = nil
	}
	if shared.devs[k] == ds {
		delete(shared.devs, k)
	}
}

// releaseWeights lets go of the engine's weights (release calls it, with
// the engine's context current).
func (e *Engine) releaseWeights() {
	if e.share != nil {
		shared.mu.Lock()
		ds := shared.devs[*e.share]
		shared.mu.Unlock()
		if ds != nil {
			e.dropShare(*e.share, ds)
		}
		e.share, e.w = nil, nil
		return
	}
	if e.w != nil {
		e.w.free()
	}
}

// stagedCopy fills device memory dst[0:total) with pieces (device offset
// and bytes, offsets increasing, the gaps between them left undefined)
// through two pinned staging buffers, so that each buffer's copy to the
// GPU runs while the other is filled: a pageable cuMemcpyHtoD per tensor
// ran at ~2.7 GB/s on the lent H200 (225 ms for the 24 x 1024 model's
// 619 MB).
func stagedCopy(dst devPtr, total int, pieces func(yield func(off int, b []byte) error) error) error {
	size := min(total, 32<<20)
	if size == 0 {
		return nil
	}
	var st uintptr
	if err := cuCheck(call(drv.streamCreate, ptr(&st), 1), "cuStreamCreate"); err != nil {
		return err
	}
	defer call(drv.streamDestroy, st)
	var bufs [2]pinned
	var evs [2]uintptr
	defer func() {
		call(drv.streamSynchronize, st)
		for i := range bufs {
			bufs[i].free()
			if evs[i] != 0 {
				call(drv.eventDestroy, evs[i])
			}
		}
	}()
	for i := range bufs {
		var err error
		if bufs[i], err = allocPinned(size); err != nil {
			return err
		}
		if err := cuCheck(call(drv.eventCreate, ptr(&evs[i]), eventDisableTiming), "cuEventCreate"); err != nil {
			return err
		}
	}
	var busy [2]bool
	cur, fill, chunk := 0, 0, 0 // staging[cur][0:fill] is device [chunk, chunk+fill)
	stage := func() []byte { return unsafe.Slice((*byte)(bufs[cur].p), size) }
	var pending []copySeg // copies into staging[cur], done on several cores before it goes up
	flush := func() error {
		parallelCopy(pending)
		pending = pending[:0]
		if fill > 0 {
			if err := cuCheck(call(drv.memcpyHtoDAsync, uintptr(dst)+uintptr(chunk), uintptr(bufs[cur].p), uintptr(fill), st), "cuMemcpyHtoDAsync"); err != nil {
				return err
			}
			if err := cuCheck(call(drv.eventRecord, evs[cur], st), "cuEventRecord"); err != nil {
				return err
			}
			busy[cur] = true
			chunk += fill
			cur, fill = cur^1, 0
		}
		if busy[cur] {
			busy[cur] = false
			return cuCheck(call(drv.eventSynchronize, evs[cur]), "cuEventSynchronize")
		}
		return nil
	}
	err := pieces(func(off int, b []byte) error {
		if off < chunk+fill || off+len(b) > total {
			return fmt.Errorf("stagedCopy: piece at %d (%d bytes) out of order or past %d", off, len(b), total)
		}
		if gap := off - (chunk + fill); fill+gap > size {
			if err := flush(); err != nil {
				return err
			}
			chunk = off
		} else {
			fill += gap
		}
		for len(b) > 0 {
			n := min(len(b), size-fill)
			pending = append(pending, copySeg{stage()[fill : fill+n], b[:n]})
			fill, b = fill+n, b[n:]
			if fill == size {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	return cuCheck(call(drv.streamSynchronize, st), "cuStreamSynchronize")
}

// copySeg is one host copy into a staging buffer.
type copySeg struct{ dst, src []byte }

// parallelCopy does segs on up to eight cores, in pieces of at most 2 MB:
// one core copied host memory at ~4 GB/s on the lent H200's VM, below what
// the copy engine takes from pinned memory.
func parallelCopy(segs []copySeg) {
	const piece = 2 << 20
	var work []copySeg
	for _, s := range segs {
		for off := 0; off < len(s.src); off += piece {
			end := min(off+piece, len(s.src))
			work = append(work, copySeg{s.dst[off:end], s.src[off:end]})
		}
	}
	if len(work) <= 1 {
		for _, w := range work {
			copy(w.dst, w.src)
		}
		return
	}
	workers := min(len(work), 8, runtime.GOMAXPROCS(0))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(work); i = int(next.Add(1) - 1) {
				copy(work[i].dst, work[i].src)
			}
		}()
	}
	wg.Wait()
}
