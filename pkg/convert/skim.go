package convert

import (
	"errors"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/convert/onnxpb"
)

// Field numbers from proto/onnx.proto at which the reader splits the wire.
const (
	fieldModelGraph       protowire.Number = 7 // ModelProto.graph
	fieldGraphInitializer protowire.Number = 5 // GraphProto.initializer
)

// tensorPayloadFields are the TensorProto fields that hold values:
// float_data, int32_data, string_data, int64_data, raw_data, double_data,
// uint64_data.
var tensorPayloadFields = map[protowire.Number]bool{4: true, 5: true, 6: true, 7: true, 9: true, 10: true, 11: true}

// skimBytes is the payload size above which a tensor's values are skipped
// while decoding; smaller ones are the constants detection reads.
const skimBytes = smallTensor * 8

var errWire = errors.New("malformed protobuf")

// decodeSkim decodes a ModelProto from r without reading the values of
// large initializers at all. protobuf-go copies every bytes field it
// decodes, so unmarshalling a whole model would put all its weights on the
// heap, next to the file's own bytes. Instead the wire is split, with the
// protobuf module's protowire reader, at the two places weights live —
// ModelProto.graph and GraphProto.initializer — and every part is still
// decoded by the generated onnxpb code, minus the skipped value fields.
// The file is read through a small window, so memory use is the graph's
// structure, whatever the weights weigh.
func decodeSkim(r io.ReaderAt, size int64) (*onnxpb.ModelProto, error) {
	w := &wireWindow{r: r, size: size}
	rest, graphs, err := w.split(0, size, fieldModelGraph, keepAll)
	if err != nil {
		return nil, err
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(rest, m); err != nil {
		return nil, err
	}
	for _, gr := range graphs {
		g, err := w.graph(gr)
		if err != nil {
			return nil, err
		}
		if m.Graph == nil {
			m.Graph = g
		} else {
			proto.Merge(m.Graph, g) // a repeated embedded field merges, as protobuf specifies
		}
	}
	return m, nil
}

func (w *wireWindow) graph(span [2]int64) (*onnxpb.GraphProto, error) {
	rest, inits, err := w.split(span[0], span[1], fieldGraphInitializer, keepAll)
	if err != nil {
		return nil, err
	}
	g := &onnxpb.GraphProto{}
	if err := proto.Unmarshal(rest, g); err != nil {
		return nil, err
	}
	for _, ir := range inits {
		keep, _, err := w.split(ir[0], ir[1], 0, keepSmallValues)
		if err != nil {
			return nil, err
		}
		t := &onnxpb.TensorProto{}
		if err := proto.Unmarshal(keep, t); err != nil {
			return nil, err
		}
		g.Initializer = append(g.Initializer, t)
	}
	return g, nil
}

func keepAll(protowire.Number, protowire.Type, int64) bool { return true }

// keepSmallValues drops a tensor's value fields larger than skimBytes.
func keepSmallValues(num protowire.Number, typ protowire.Type, n int64) bool {
	return !(tensorPayloadFields[num] && typ == protowire.BytesType && n > skimBytes)
}

// wireWindow reads a protobuf message from an io.ReaderAt through one
// reusable 64 KiB window; reads beyond the window allocate their own slice.
type wireWindow struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

const windowSize = 64 << 10

// at returns n bytes at off; the slice is valid until the next call.
func (w *wireWindow) at(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > w.size || n > w.size-off {
		return nil, errWire
	}
	if off >= w.off && off+n <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : off-w.off+n], nil
	}
	if n > windowSize {
		b := make([]byte, n)
		if _, err := w.r.ReadAt(b, off); err != nil {
			return nil, err
		}
		return b, nil
	}
	if w.buf == nil {
		w.buf = make([]byte, windowSize)
	}
	w.buf = w.buf[:min(int64(windowSize), w.size-off)]
	if _, err := w.r.ReadAt(w.buf, off); err != nil && !errors.Is(err, io.EOF) {
		w.buf = w.buf[:0]
		return nil, err
	}
	w.off = off
	return w.buf[:n], nil
}

// field reads the field header at off: its number, wire type, the value's
// span, and where the next field starts.
func (w *wireWindow) field(off, limit int64) (num protowire.Number, typ protowire.Type, valOff, end int64, err error) {
	hdr, err := w.at(off, min(20, limit-off))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	num, typ, n := protowire.ConsumeTag(hdr)
	if n < 0 {
		return 0, 0, 0, 0, errWire
	}
	valOff = off + int64(n)
	switch typ {
	case protowire.VarintType:
		_, m := protowire.ConsumeVarint(hdr[n:])
		if m < 0 {
			return 0, 0, 0, 0, errWire
		}
		end = valOff + int64(m)
	case protowire.Fixed32Type:
		end = valOff + 4
	case protowire.Fixed64Type:
		end = valOff + 8
	case protowire.BytesType:
		l, m := protowire.ConsumeVarint(hdr[n:])
		if m < 0 || l > uint64(limit) {
			return 0, 0, 0, 0, errWire
		}
		valOff += int64(m)
		end = valOff + int64(l)
	default: // groups: ONNX never uses them
		return 0, 0, 0, 0, errWire
	}
	if end > limit {
		return 0, 0, 0, 0, errWire
	}
	return num, typ, valOff, end, nil
}

// split walks the fields in [start, end): the length-delimited occurrences
// of target are returned as spans, the fields keep accepts are copied into
// rest in order, and the others are skipped unread.
func (w *wireWindow) split(start, end int64, target protowire.Number, keep func(protowire.Number, protowire.Type, int64) bool) (rest []byte, parts [][2]int64, err error) {
	for off := start; off < end; {
		num, typ, valOff, next, err := w.field(off, end)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case target != 0 && num == target && typ == protowire.BytesType:
			parts = append(parts, [2]int64{valOff, next})
		case keep(num, typ, next-valOff):
			b, err := w.at(off, next-off)
			if err != nil {
				return nil, nil, err
			}
			rest = append(rest, b...)
		}
		off = next
	}
	return rest, parts, nil
}
