// Package checkpointtest writes PyTorch zip checkpoints for tests, in the
// layout torch.save uses (checked against CPython's own pickler by
// scripts/make-torch-fixture.py and the checkpoint package's tests), so that
// export can be tested on a pytorch_model.bin without PyTorch.
package checkpointtest

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"

	"github.com/m3ectl/m3ectl/pkg/engine/safetensors"
)

var storageClass = map[string]string{"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage", "I64": "LongStorage"}

type pickler struct{ bytes.Buffer }

func (p *pickler) op(b ...byte) { p.Write(b) }

func (p *pickler) global(module, name string) {
	p.op('c')
	p.WriteString(module + "\n" + name + "\n")
}

func (p *pickler) str(s string) {
	p.op('X')
	_ = binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}

func (p *pickler) int(n int) {
	p.op('J')
	_ = binary.Write(p, binary.LittleEndian, int32(n))
}

func (p *pickler) ints(v []int) {
	p.op('(')
	for _, n := range v {
		p.int(n)
	}
	p.op('t')
}

// WriteTorch writes the tensors of f (in f.Names() order, one storage each)
// as a state dict to path.
func WriteTorch(path string, f *safetensors.File) error {
	var p pickler
	p.op(0x80, 2)
	p.global("collections", "OrderedDict")
	p.op(')', 'R', '(')
	var keys []string
	for i, name := range f.Names() {
		t := f.Tensor(name)
		cls, ok := storageClass[t.DType]
		if !ok {
			return fmt.Errorf("dtype %s has no torch storage class here", t.DType)
		}
		key := fmt.Sprint(i)
		keys = append(keys, key)
		p.str(name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.op('(', '(')
		p.str("storage")
		p.global("torch", cls)
		p.str(key)
		p.str("cpu")
		p.int(t.Elements())
		p.op('t', 'Q')
		p.int(0)
		p.ints(t.Shape)
		stride := make([]int, len(t.Shape))
		n := 1
		for d := len(t.Shape) - 1; d >= 0; d-- {
			stride[d] = n
			n *= t.Shape[d]
		}
		p.ints(stride)
		p.op(0x89) // NEWFALSE: requires_grad
		p.global("collections", "OrderedDict")
		p.op(')', 'R', 't', 'R')
	}
	p.op('u', '.')
	var out bytes.Buffer
	z := zip.NewWriter(&out)
	add := func(name string, b []byte) error {
		w, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	if err := add("archive/data.pkl", p.Bytes()); err != nil {
		return err
	}
	for i, name := range f.Names() {
		if err := add("archive/data/"+keys[i], f.Tensor(name).Data); err != nil {
			return err
		}
	}
	if err := add("archive/version", []byte("3\n")); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// WriteSafetensors writes the tensors of f as a safetensors file.
func WriteSafetensors(path string, f *safetensors.File) error {
	header := map[string]any{}
	var data []byte
	for _, name := range f.Names() {
		t := f.Tensor(name)
		header[name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []int{len(data), len(data) + len(t.Data)}}
		data = append(data, t.Data...)
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), data...)
	return os.WriteFile(path, out, 0o644)
}
