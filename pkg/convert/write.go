package convert

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// protobufLimit is protobuf's 2 GiB message limit; models whose weights
// come near it must keep them in an external-data file (onnx's
// save_model(..., save_as_external_data=True) rule).
const protobufLimit = 2<<30 - 64<<20

// externalThreshold: tensors smaller than this stay inside the .onnx when
// weights go external, as onnx's convert_model_to_external_data does (1 KiB).
const externalThreshold = 1024

// LoadModel reads a whole ONNX model, weights included: tensors kept in
// external-data files are read into the model (locations confined to the
// model's folder), so the model can be rewritten and saved anywhere.
func LoadModel(path string) (*onnxpb.ModelProto, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrNotONNX, err)
	}
	if m.GetIrVersion() <= 0 || m.GetGraph() == nil {
		return nil, fmt.Errorf("%s: %w: no IR version or no graph", path, ErrNotONNX)
	}
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	dir := filepath.Dir(path)
	for _, t := range m.GetGraph().GetInitializer() {
		ref, ok, err := externalRefOf(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", path, ErrExternalData, err)
		}
		if !ok {
			continue
		}
		loc := filepath.FromSlash(ref.location)
		if filepath.IsAbs(loc) || strings.HasPrefix(filepath.Clean(loc), "..") {
			return nil, fmt.Errorf("%s: %w: tensor %q points outside the model's folder (%s)", path, ErrExternalData, t.GetName(), ref.location)
		}
		f := files[loc]
		if f == nil {
			if f, err = os.Open(filepath.Join(dir, loc)); err != nil {
				return nil, fmt.Errorf("%s: %w: %v", path, ErrExternalData, err)
			}
			files[loc] = f
		}
		n, err := numElements(t.GetDims())
		if err != nil {
			return nil, fmt.Errorf("%s: %w: tensor %q: %v", path, ErrExternalData, t.GetName(), err)
		}
		length := storageBytes(n, t.GetDataType())
		// Bound the read by the file before allocating: dims are the file's word.
		if st, err := f.Stat(); err != nil || ref.end > st.Size() || length < 0 || ref.end < length {
			return nil, fmt.Errorf("%s: %w: tensor %q needs bytes up to %d of %s, which is shorter", path, ErrExternalData, t.GetName(), ref.end, ref.location)
		}
		buf := make([]byte, length)
		if _, err := f.ReadAt(buf, ref.end-length); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
			return nil, fmt.Errorf("%s: %w: tensor %q: %v", path, ErrExternalData, t.GetName(), err)
		}
		t.RawData, t.ExternalData, t.DataLocation = buf, nil, onnxpb.TensorProto_DEFAULT
	}
	return m, nil
}

// WriteOptions says how WriteModel stores weights.
type WriteOptions struct {
	// ExternalData keeps every tensor of 1 KiB or more in PATH.data (also
	// done, whatever this says, when the weights near protobuf's 2 GiB).
	ExternalData bool
}

// WriteModel writes m to path through temporary files renamed into place,
// so a failure leaves nothing half-written. It returns the external-data
// file written, or "". Tensors moved to external data are changed in m.
func WriteModel(path string, m *onnxpb.ModelProto, o WriteOptions) (string, error) {
	var total int64
	for _, t := range m.GetGraph().GetInitializer() {
		total += int64(len(t.GetRawData()))
	}
	dataPath := ""
	if o.ExternalData || total > protobufLimit {
		dataPath = path + ".data"
		tmp, err := writeExternal(dataPath, m)
		if err != nil {
			return "", err
		}
		defer os.Remove(tmp) // no-op once renamed
		b, err := proto.Marshal(m)
		if err != nil {
			return "", fmt.Errorf("encode %s: %w", path, err)
		}
		if err := writeFileAtomic(path, b); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, dataPath); err != nil {
			os.Remove(path)
			return "", fmt.Errorf("write %s: %w", dataPath, err)
		}
		return dataPath, nil
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", path, err)
	}
	return "", writeFileAtomic(path, b)
}

// writeExternal moves the large tensors' bytes into a temporary file beside
// dataPath (renamed by the caller) and points the tensors at dataPath's name.
func writeExternal(dataPath string, m *onnxpb.ModelProto) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(dataPath), "."+filepath.Base(dataPath)+".*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", dataPath, err)
	}
	var off int64
	loc := filepath.Base(dataPath)
	for _, t := range m.GetGraph().GetInitializer() {
		raw := t.GetRawData()
		if len(raw) < externalThreshold {
			continue
		}
		if _, err := f.Write(raw); err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", fmt.Errorf("write %s: %w", dataPath, err)
		}
		t.RawData = nil
		t.DataLocation = onnxpb.TensorProto_EXTERNAL
		t.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: "location", Value: loc},
			{Key: "offset", Value: strconv.FormatInt(off, 10)},
			{Key: "length", Value: strconv.Itoa(len(raw))},
		}
		off += int64(len(raw))
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", dataPath, err)
	}
	return f.Name(), nil
}

// writeFileAtomic writes data to a temporary file in path's folder and
// renames it over path.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
