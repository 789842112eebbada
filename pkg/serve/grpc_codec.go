package serve

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// grpcCodec is the server's protobuf codec: the standard one, except that a
// ModelInferRequest is scanned in wire form before it is unmarshalled (an
// 16 MB message of 8M empty input tensors used to cost 800 MB) and its
// weight is taken from the in-flight budget. grpc-go turns a codec error
// into INTERNAL, so a refusal is not returned from Unmarshal: it is noted
// against the message and answered (UNAVAILABLE, INVALID_ARGUMENT, ...) by
// the handler, which also releases the weight (admission).
type grpcCodec struct {
	s     *Server
	inner encoding.CodecV2
	// notes maps a *ModelInferRequest being served to its admission.
	notes sync.Map
}

type admission struct {
	weight int64
	err    error
}

func newGRPCCodec(s *Server) *grpcCodec {
	return &grpcCodec{s: s, inner: encoding.GetCodecV2("proto")}
}

func (c *grpcCodec) Name() string { return "proto" }

func (c *grpcCodec) Marshal(v any) (mem.BufferSlice, error) { return c.inner.Marshal(v) }

func (c *grpcCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*tritonpb.ModelInferRequest)
	if !ok {
		return c.inner.Unmarshal(data, v)
	}
	// The weight is taken before the message is even made contiguous, so a
	// refused one costs nothing beyond the transport's buffers.
	w, err := c.s.budget.reserve(int64(data.Len()))
	if err != nil {
		c.note(req, admission{err: err})
		return nil
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	if err := scanInferProto(b, c.s.cfg.Limits); err != nil {
		c.note(req, admission{weight: w, err: err})
		return nil
	}
	if err := proto.Unmarshal(b, req); err != nil {
		c.s.budget.release(w) // grpc-go answers INTERNAL; no handler will run
		return err
	}
	c.note(req, admission{weight: w})
	return nil
}

// note records a message's admission. A second message decoded into the
// same request (a client breaking a unary call's cardinality, which
// grpc-go then refuses) gives back the first one's weight.
func (c *grpcCodec) note(req *tritonpb.ModelInferRequest, a admission) {
	if old, loaded := c.notes.Swap(req, a); loaded {
		c.s.budget.release(old.(admission).weight)
	}
}

// admit takes the message's admission: the refusal to answer, or a release
// for its weight. Calling it again (or for a message the codec never saw)
// is harmless.
func (c *grpcCodec) admit(req any) (release func(), err error) {
	v, ok := c.notes.LoadAndDelete(req)
	if !ok {
		return func() {}, nil
	}
	a := v.(admission)
	return func() { c.s.budget.release(a.weight) }, a.err
}

// scanInferProto checks a ModelInferRequest's wire form against the
// limits: inputs, outputs, parameters, and the elements of each tensor's
// contents and raw_input_contents, before anything is allocated for them.
// Field numbers are grpc_service.proto's (ModelInferRequest: parameters 4,
// inputs 5, outputs 6, raw_input_contents 7; InferInputTensor: contents 5;
// InferTensorContents: bytes_contents 8, the numeric contents 1-7).
func scanInferProto(b []byte, lim Limits) error {
	var inputs, outputs, params, raws, elements int
	err := walkProto(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch num {
		case 4:
			if params++; params > lim.MaxKeys {
				return invalidf("the request has more than %d parameters", lim.MaxKeys)
			}
		case 5:
			if inputs++; inputs > lim.MaxInputs {
				return invalidf("the request has more than %d inputs", lim.MaxInputs)
			}
			return walkProto(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if num != 5 || typ != protowire.BytesType {
					return nil
				}
				return walkProto(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
					switch {
					case num == 8:
						elements++
					case num >= 1 && num <= 7 && typ == protowire.BytesType:
						elements += len(v) // packed numbers: at most one per byte
					case num >= 1 && num <= 7:
						elements++
					}
					if elements > maxBytesElements {
						return errorf(kindTooLarge, "the request has more than %d tensor elements", maxBytesElements)
					}
					return nil
				})
			})
		case 6:
			if outputs++; outputs > lim.MaxOutputs {
				return invalidf("the request asks for more than %d outputs", lim.MaxOutputs)
			}
		case 7:
			if raws++; raws > lim.MaxInputs {
				return invalidf("raw_input_contents has more than %d entries", lim.MaxInputs)
			}
			if n := countBytesElements(v, maxBytesElements); n > maxBytesElements {
				return errorf(kindTooLarge, "raw_input_contents entry %d has more than %d elements", raws-1, maxBytesElements)
			}
		}
		return nil
	})
	return err
}

// walkProto calls f for each field of a message's wire form; v is the
// payload of a length-delimited field, nil otherwise.
func walkProto(b []byte, f func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return invalidf("malformed protobuf message: %v", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return invalidf("malformed protobuf message: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// countBytesElements counts the 4-byte length-prefixed elements of a
// binary BYTES tensor, stopping past limit; a malformed tensor counts what
// it can (the decoder reports the error).
func countBytesElements(data []byte, limit int) int {
	n := 0
	for off := 0; off+4 <= len(data) && n <= limit; n++ {
		l := int(uint32(data[off]) | uint32(data[off+1])<<8 | uint32(data[off+2])<<16 | uint32(data[off+3])<<24)
		off += 4
		if l > len(data)-off {
			return n + 1
		}
		off += l
	}
	return n
}
