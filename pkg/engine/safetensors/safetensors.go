// Package safetensors reads Hugging Face .safetensors weight files: an 8-byte
// little-endian header length, a JSON header naming every tensor's dtype,
// shape and byte range, then the raw little-endian tensor data.
//
// The GPU engine uploads weights straight from this layout, so the reader
// keeps the whole file as one byte slice (read once) and hands out views, and
// converts fp32/fp16/bf16 to the precision the engine computes in.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
)

// maxHeader bounds the JSON header so that a corrupt length cannot make the
// reader allocate gigabytes; real headers are a few hundred kilobytes.
const maxHeader = 100 << 20

// ErrFormat is wrapped by every error about a malformed file, so that callers
// can tell a bad file from an I/O failure.
var ErrFormat = errors.New("safetensors: malformed file")

// Tensor is one named tensor's description and raw little-endian bytes.
type Tensor struct {
	Name  string
	DType string // "F32", "F16", "BF16", "I64", ...
	Shape []int
	Data  []byte // view into the file's bytes
}

// Elements is the product of the shape (1 for a scalar).
func (t *Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file.
type File struct {
	Metadata map[string]string
	tensors  map[string]*Tensor
}

type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Open reads and parses the file at path.
func Open(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return f, nil
}

// dtypeSize gives the bytes per element of the dtypes safetensors defines.
func dtypeSize(dt string) int {
	switch dt {
	case "F64", "I64", "U64":
		return 8
	case "F32", "I32", "U32":
		return 4
	case "F16", "BF16", "I16", "U16":
		return 2
	case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2":
		return 1
	}
	return 0
}

// Parse parses a whole safetensors file held in b. The tensors' Data slices
// alias b.
func Parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header length", ErrFormat, len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%w: header length %d does not fit the file of %d bytes", ErrFormat, n, len(b))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
	}
	data := b[8+n:]
	f := &File{tensors: make(map[string]*Tensor, len(raw))}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%w: __metadata__: %v", ErrFormat, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		size := dtypeSize(e.DType)
		if size == 0 {
			return nil, fmt.Errorf("%w: tensor %q has unknown dtype %q", ErrFormat, name, e.DType)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && elems > math.MaxInt32*int64(1024)/int64(d)) {
				return nil, fmt.Errorf("%w: tensor %q has bad shape %v", ErrFormat, name, e.Shape)
			}
			elems *= int64(d)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) {
			return nil, fmt.Errorf("%w: tensor %q offsets [%d,%d) outside the %d data bytes", ErrFormat, name, lo, hi, len(data))
		}
		if hi-lo != elems*int64(size) {
			return nil, fmt.Errorf("%w: tensor %q holds %d bytes, its shape %v needs %d", ErrFormat, name, hi-lo, e.Shape, elems*int64(size))
		}
		f.tensors[name] = &Tensor{Name: name, DType: e.DType, Shape: e.Shape, Data: data[lo:hi:hi]}
	}
	return f, nil
}

// Names lists the tensor names, sorted.
func (f *File) Names() []string {
	out := make([]string, 0, len(f.tensors))
	for k := range f.tensors {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Tensor returns the named tensor, or nil.
func (f *File) Tensor(name string) *Tensor { return f.tensors[name] }

// Float32 converts a floating-point tensor to float32 values.
func (t *Tensor) Float32() ([]float32, error) {
	n := t.Elements()
	out := make([]float32, n)
	d := t.Data
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case "F16":
		for i := range out {
			out[i] = HalfToFloat(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16)
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	default:
		return nil, fmt.Errorf("tensor %q: dtype %s is not floating point", t.Name, t.DType)
	}
	return out, nil
}

// New makes a File from tensors read some other way (a PyTorch checkpoint),
// so that every weight loader reads one type whatever the checkpoint format.
// Each tensor's Data must hold exactly its shape's elements of its DType.
func New(tensors []*Tensor, metadata map[string]string) (*File, error) {
	f := &File{Metadata: metadata, tensors: make(map[string]*Tensor, len(tensors))}
	for _, t := range tensors {
		size := dtypeSize(t.DType)
		if size == 0 {
			return nil, fmt.Errorf("%w: tensor %q has unknown dtype %q", ErrFormat, t.Name, t.DType)
		}
		if len(t.Data) != t.Elements()*size {
			return nil, fmt.Errorf("%w: tensor %q holds %d bytes, its shape %v needs %d", ErrFormat, t.Name, len(t.Data), t.Shape, t.Elements()*size)
		}
		if _, dup := f.tensors[t.Name]; dup {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrFormat, t.Name)
		}
		f.tensors[t.Name] = t
	}
	return f, nil
}
