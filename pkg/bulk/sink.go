package bulk

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// Output formats, picked by the output file's extension.
const (
	OutNPY     = ".npy"
	OutParquet = ".parquet"
	OutJSONL   = ".jsonl"
)

// SinkOptions say how CreateSink writes.
type SinkOptions struct {
	// Float16 stores .npy embeddings as IEEE half precision (<f2); the
	// other formats keep float32.
	Float16 bool
	// IncludeText adds the input text as a column of .parquet output.
	IncludeText bool
}

// CreateSink creates the output for path by its extension: .npy (an
// [N, dim] matrix), .parquet or .jsonl ({"index","embedding"} lines, as
// embed prints them).
func CreateSink(path string, dim int, o SinkOptions) (Sink, error) {
	lower := strings.ToLower(path)
	if o.Float16 && !strings.HasSuffix(lower, OutNPY) {
		return nil, fmt.Errorf("--dtype float16 applies to .npy output only; %s is stored as float32", path)
	}
	if o.IncludeText && !strings.HasSuffix(lower, OutParquet) {
		return nil, fmt.Errorf("--include-text applies to .parquet output only")
	}
	switch {
	case strings.HasSuffix(lower, OutNPY):
		return newNPYSink(path, dim, o.Float16)
	case strings.HasSuffix(lower, OutParquet):
		return newParquetSink(path, dim, o.IncludeText)
	case strings.HasSuffix(lower, OutJSONL), strings.HasSuffix(lower, ".ndjson"):
		return newJSONLSink(path)
	}
	return nil, fmt.Errorf("--output %s: unknown extension; use .npy, .parquet or .jsonl", path)
}

// npySink writes NumPy's .npy format version 1.0
// (numpy/lib/format.py@v2.2.0: magic, little-endian header length, a
// Python dict literal padded with spaces to a multiple of 64 bytes, then
// the raw C-order data). The row count is known only at the end, so the
// header is written with room for any count and rewritten on Close.
type npySink struct {
	out    *atomicFile
	dim    int
	f16    bool
	rows   int
	buf    []byte
	header int
}

const npyHeaderLen = 128 // magic + length + dict, padded; room for 20-digit counts

func newNPYSink(path string, dim int, f16 bool) (*npySink, error) {
	out, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	s := &npySink{out: out, dim: dim, f16: f16}
	if _, err := out.w.Write(s.headerBytes(0)); err != nil {
		out.abort()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

func (s *npySink) headerBytes(rows int) []byte {
	descr := "<f4"
	if s.f16 {
		descr = "<f2"
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }", descr, rows, s.dim)
	h := make([]byte, 0, npyHeaderLen)
	h = append(h, "\x93NUMPY\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(npyHeaderLen-10))
	h = append(h, dict...)
	for len(h) < npyHeaderLen-1 {
		h = append(h, ' ')
	}
	return append(h, '\n')
}

func (s *npySink) Write(first int, texts []string, emb []float32, dim int) error {
	n := len(texts) * dim
	if s.f16 {
		s.buf = appendFloat16s(s.buf[:0], emb[:n])
	} else if littleEndian && n > 0 {
		// The floats' memory is already .npy's <f4: write it as it is
		// (encoding 410 MB a value at a time was ~0.1 s of the writer's
		// time in the 100,000-text job, the last chunk's on the critical
		// path).
		if _, err := s.out.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&emb[0])), 4*n)); err != nil {
			return fmt.Errorf("write %s: %w", s.out.path, err)
		}
		s.rows += len(texts)
		return nil
	} else {
		s.buf = s.buf[:0]
		for _, f := range emb[:n] {
			s.buf = binary.LittleEndian.AppendUint32(s.buf, math.Float32bits(f))
		}
	}
	if _, err := s.out.w.Write(s.buf); err != nil {
		return fmt.Errorf("write %s: %w", s.out.path, err)
	}
	s.rows += len(texts)
	return nil
}

func (s *npySink) Close() error {
	if err := s.out.w.Flush(); err != nil {
		s.out.abort()
		return fmt.Errorf("write %s: %w", s.out.path, err)
	}
	if _, err := s.out.f.WriteAt(s.headerBytes(s.rows), 0); err != nil {
		s.out.abort()
		return fmt.Errorf("write %s: %w", s.out.path, err)
	}
	return s.out.commit()
}

func (s *npySink) Abort() { s.out.abort() }

// littleEndian: this machine stores a float32 as .npy's <f4 does.
var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// appendFloat16s appends v as little-endian IEEE 754 binary16, rounded to
// nearest even as numpy's astype(float16) rounds.
func appendFloat16s(b []byte, v []float32) []byte {
	for _, f := range v {
		b = binary.LittleEndian.AppendUint16(b, Float16(f))
	}
	return b
}

// Float16 converts f to IEEE 754 binary16 bits, rounding to nearest even;
// out-of-range values become ±Inf, NaN stays NaN.
func Float16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	exp := int(u>>23&0xff) - 127 + 15
	mant := u & 0x7fffff
	switch {
	case u&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f: // overflow or Inf
		return sign | 0x7c00
	case exp <= 0: // subnormal half or zero
		if exp < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - exp) // 24-bit mantissa down to the subnormal's bits
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, up to Inf: correct
	}
	return sign | uint16(half)
}

// jsonlSink writes embed's JSON lines; lines of a chunk are formatted on
// every core, then written in order.
type jsonlSink struct {
	out   *atomicFile
	parts [][]byte
}

func newJSONLSink(path string) (*jsonlSink, error) {
	out, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	return &jsonlSink{out: out, parts: make([][]byte, runtime.GOMAXPROCS(0))}, nil
}

func (s *jsonlSink) Write(first int, texts []string, emb []float32, dim int) error {
	n := len(texts)
	per := (n + len(s.parts) - 1) / len(s.parts)
	var wg sync.WaitGroup
	errs := make([]error, len(s.parts))
	for p := range s.parts {
		lo, hi := p*per, min((p+1)*per, n)
		s.parts[p] = s.parts[p][:0]
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := s.parts[p]
			for i := lo; i < hi; i++ {
				v := emb[i*dim : (i+1)*dim]
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						errs[p] = fmt.Errorf("input %d: the model produced a non-finite embedding (NaN or Inf)", first+i)
						return
					}
				}
				b = engine.AppendEmbeddingJSON(b, first+i, v)
			}
			s.parts[p] = b
		}()
	}
	wg.Wait()
	for p := range s.parts {
		if errs[p] != nil {
			return errs[p]
		}
	}
	for _, b := range s.parts {
		if _, err := s.out.w.Write(b); err != nil {
			return fmt.Errorf("write %s: %w", s.out.path, err)
		}
	}
	return nil
}

func (s *jsonlSink) Close() error { return s.out.commit() }

func (s *jsonlSink) Abort() { s.out.abort() }
