package checkpoint

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/m3ectl/m3ectl/pkg/engine/safetensors"
)

// ErrTorchFormat is wrapped by every error about a malformed or unsupported
// PyTorch checkpoint.
var ErrTorchFormat = errors.New("pytorch checkpoint: unsupported or malformed file")

// maxPickle bounds data.pkl: a state dict's pickle is names and tuples, a
// few hundred kilobytes for BERT-large; the weights are separate records.
const maxPickle = 64 << 20

// storageTypes maps the storage classes torch.save pickles to safetensors
// dtypes. Only the classes named here are ever resolved.
var storageTypes = map[string]string{
	"torch.FloatStorage":    "F32",
	"torch.HalfStorage":     "F16",
	"torch.BFloat16Storage": "BF16",
	"torch.DoubleStorage":   "F64",
	"torch.LongStorage":     "I64",
	"torch.IntStorage":      "I32",
	"torch.ShortStorage":    "I16",
	"torch.CharStorage":     "I8",
	"torch.ByteStorage":     "U8",
	"torch.BoolStorage":     "BOOL",
}

// storageClass is a resolved storage class (e.g. torch.FloatStorage).
type storageClass struct{ dtype string }

// storageRef is a persistent id: ("storage", class, key, location, numel).
type storageRef struct {
	dtype string
	key   string
	numel int
}

// tensorRef is what _rebuild_tensor_v2 returns: a view of a storage.
type tensorRef struct {
	storage *storageRef
	offset  int
	size    []int
	stride  []int
}

// rebuildTensor stands for torch._utils._rebuild_tensor_v2. It records the
// view and runs nothing.
type rebuildTensor struct{}

// Call implements gopickle's types.Callable: REDUCE applies it to the pickled arguments.
func (rebuildTensor) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 with %d arguments", ErrTorchFormat, len(args))
	}
	st, ok := args[0].(*storageRef)
	off, ok2 := args[1].(int)
	size, ok3 := intTuple(args[2])
	stride, ok4 := intTuple(args[3])
	if !ok || !ok2 || !ok3 || !ok4 || off < 0 || len(size) != len(stride) {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 arguments are not (storage, offset, size, stride)", ErrTorchFormat)
	}
	return &tensorRef{storage: st, offset: off, size: size, stride: stride}, nil
}

// rebuildParameter stands for torch._utils._rebuild_parameter(data, requires_grad, hooks).
type rebuildParameter struct{}

// Call implements gopickle's types.Callable.
func (rebuildParameter) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("%w: _rebuild_parameter without data", ErrTorchFormat)
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("%w: _rebuild_parameter of a non-tensor", ErrTorchFormat)
	}
	return t, nil
}

func intTuple(v interface{}) ([]int, bool) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok || n < 0 {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// findClass resolves only the globals a state dict needs; anything else (a
// pickle that would call os.system, or a whole pickled nn.Module) is an
// error, so nothing in the file is ever executed.
func findClass(module, name string) (interface{}, error) {
	full := module + "." + name
	if dt, ok := storageTypes[full]; ok {
		return &storageClass{dtype: dt}, nil
	}
	switch full {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	}
	return nil, fmt.Errorf("%w: the pickle refers to %s, which a plain state dict does not; m3ectl reads state dicts only (re-save with torch.save(model.state_dict()) or as safetensors)", ErrTorchFormat, full)
}

// OpenTorch reads a PyTorch zip checkpoint holding a state dict
// (pytorch_model.bin). The pickle is read by github.com/nlpodyssey/gopickle
// with a class resolver that knows only tensors and storages; the storages
// are the zip's data/N records, read as raw little-endian bytes.
func OpenTorch(file string) (*safetensors.File, error) {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", file, ErrTorchFormat, err)
	}
	defer zr.Close()
	f, err := readTorch(&zr.Reader)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return f, nil
}

// ReadTorch is OpenTorch on bytes already in memory.
func ReadTorch(b []byte) (*safetensors.File, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTorchFormat, err)
	}
	return readTorch(zr)
}

func readTorch(zr *zip.Reader) (*safetensors.File, error) {
	var pkl *zip.File
	records := map[string]*zip.File{}
	for _, f := range zr.File {
		dir, base := path.Split(f.Name)
		switch {
		case base == "data.pkl" && strings.Count(dir, "/") == 1:
			pkl = f
		case strings.HasSuffix(dir, "/data/"):
			records[base] = f
		case base == "constants.pkl":
			return nil, fmt.Errorf("%w: a TorchScript archive, not a state dict", ErrTorchFormat)
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("%w: no data.pkl in the zip (legacy pre-1.6 checkpoints are not read; re-save with a current PyTorch)", ErrTorchFormat)
	}
	if pkl.UncompressedSize64 > maxPickle {
		return nil, fmt.Errorf("%w: data.pkl is %d bytes; a state dict's pickle is far smaller", ErrTorchFormat, pkl.UncompressedSize64)
	}
	raw, err := readRecord(pkl, int64(pkl.UncompressedSize64))
	if err != nil {
		return nil, err
	}
	obj, err := unpickle(raw)
	if err != nil {
		return nil, err
	}
	entries, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	return materialise(entries, records)
}

// unpickle runs the restricted unpickler on data.pkl. Lengths inside the
// pickle are checked against its size first (the unpickler allocates what a
// length says before reading), and a panic inside the third-party decoder
// on malformed input becomes an error.
func unpickle(raw []byte) (obj interface{}, err error) {
	if err := scanPickle(raw); err != nil {
		return nil, fmt.Errorf("%w: data.pkl: %v", ErrTorchFormat, err)
	}
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("%w: data.pkl does not decode (%v)", ErrTorchFormat, r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(raw))
	u.FindClass = findClass
	u.PersistentLoad = persistentLoad
	obj, err = u.Load()
	if err != nil {
		if errors.Is(err, ErrTorchFormat) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: data.pkl: %v", ErrTorchFormat, err)
	}
	return obj, nil
}

func persistentLoad(id interface{}) (interface{}, error) {
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() < 5 {
		return nil, fmt.Errorf("%w: persistent id %T is not a storage tuple", ErrTorchFormat, id)
	}
	kind, _ := t.Get(0).(string)
	cls, ok1 := t.Get(1).(*storageClass)
	key, ok2 := t.Get(2).(string)
	numel, ok3 := t.Get(4).(int)
	if kind != "storage" || !ok1 || !ok2 || !ok3 || numel < 0 || key == "" || strings.ContainsAny(key, "/\\") {
		return nil, fmt.Errorf("%w: persistent id is not (\"storage\", class, key, location, numel)", ErrTorchFormat)
	}
	return &storageRef{dtype: cls.dtype, key: key, numel: numel}, nil
}

type namedRef struct {
	name string
	ref  *tensorRef
}

// stateDict takes the top-level mapping of names to tensors. Non-tensor
// entries (a "_metadata" attribute of an OrderedDict is not pickled as an
// entry, but version counters may be) are skipped.
func stateDict(obj interface{}) ([]namedRef, error) {
	var out []namedRef
	add := func(k, v interface{}) {
		name, ok := k.(string)
		ref, ok2 := v.(*tensorRef)
		if ok && ok2 {
			out = append(out, namedRef{name, ref})
		}
	}
	switch d := obj.(type) {
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			if e, ok := el.Value.(*types.OrderedDictEntry); ok {
				add(e.Key, e.Value)
			}
		}
	case *types.Dict:
		for _, e := range *d {
			add(e.Key, e.Value)
		}
	default:
		return nil, fmt.Errorf("%w: the pickle holds a %T, not a state dict", ErrTorchFormat, obj)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the state dict holds no tensors", ErrTorchFormat)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// materialise reads each storage record once and slices every tensor out of
// it. Only contiguous (row-major) views are accepted, which is what
// state_dict() saves; the bytes are checked against the record's size.
func materialise(entries []namedRef, records map[string]*zip.File) (*safetensors.File, error) {
	storages := map[string][]byte{}
	var tensors []*safetensors.Tensor
	for _, e := range entries {
		st := e.ref.storage
		size := elemSize(st.dtype)
		data, ok := storages[st.key]
		if !ok {
			rec := records[st.key]
			if rec == nil {
				return nil, fmt.Errorf("%w: tensor %q: storage record data/%s missing", ErrTorchFormat, e.name, st.key)
			}
			want := int64(st.numel) * int64(size)
			if int64(rec.UncompressedSize64) != want {
				return nil, fmt.Errorf("%w: tensor %q: storage data/%s is %d bytes, %d %s elements need %d", ErrTorchFormat, e.name, st.key, rec.UncompressedSize64, st.numel, st.dtype, want)
			}
			var err error
			if data, err = readRecord(rec, want); err != nil {
				return nil, err
			}
			storages[st.key] = data
		}
		n := 1
		for i := len(e.ref.size) - 1; i >= 0; i-- {
			if e.ref.size[i] != 1 && e.ref.stride[i] != n {
				return nil, fmt.Errorf("%w: tensor %q is a non-contiguous view (size %v, stride %v)", ErrTorchFormat, e.name, e.ref.size, e.ref.stride)
			}
			if e.ref.size[i] > 0 && n > int(^uint(0)>>2)/e.ref.size[i] {
				return nil, fmt.Errorf("%w: tensor %q has an impossible size %v", ErrTorchFormat, e.name, e.ref.size)
			}
			n *= e.ref.size[i]
		}
		lo, hi := int64(e.ref.offset)*int64(size), int64(e.ref.offset+n)*int64(size)
		if hi > int64(len(data)) || lo > hi {
			return nil, fmt.Errorf("%w: tensor %q reads past its storage", ErrTorchFormat, e.name)
		}
		tensors = append(tensors, &safetensors.Tensor{Name: e.name, DType: st.dtype, Shape: e.ref.size, Data: data[lo:hi:hi]})
	}
	f, err := safetensors.New(tensors, map[string]string{"format": "pt"})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTorchFormat, err)
	}
	return f, nil
}

func elemSize(dtype string) int {
	switch dtype {
	case "F64", "I64":
		return 8
	case "F32", "I32":
		return 4
	case "F16", "BF16", "I16":
		return 2
	}
	return 1
}

// readRecord reads one zip record of a known size, never more.
func readRecord(f *zip.File, size int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTorchFormat, f.Name, err)
	}
	defer rc.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTorchFormat, f.Name, err)
	}
	return b, nil
}
