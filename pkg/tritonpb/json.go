package tritonpb

import (
	"encoding/json"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ConfigJSON writes a message as Triton writes a model configuration as
// JSON (its config endpoint, and the args["model_config"] string the Python
// backend hands to initialize): proto field names, primitive fields and
// lists printed even when they hold their defaults (protobuf's
// always_print_primitive_fields), enums by name, and 64-bit integers as
// JSON numbers (core's ModelConfigToJson fixes protobuf's quoted int64s).
func ConfigJSON(m proto.Message) ([]byte, error) {
	return json.Marshal(messageJSON(m.ProtoReflect()))
}

func messageJSON(m protoreflect.Message) map[string]any {
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		set := m.Has(fd)
		if !set && (fd.ContainingOneof() != nil || (fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap())) {
			continue // unset sub-messages and oneof members are left out, as protobuf does
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			arr := make([]any, l.Len())
			for j := range arr {
				arr[j] = scalarJSON(fd, l.Get(j))
			}
			out[string(fd.Name())] = arr
		case fd.IsMap():
			mm := map[string]any{}
			v.Map().Range(func(k protoreflect.MapKey, val protoreflect.Value) bool {
				mm[k.String()] = scalarJSON(fd.MapValue(), val)
				return true
			})
			out[string(fd.Name())] = mm
		default:
			out[string(fd.Name())] = scalarJSON(fd, v)
		}
	}
	return out
}

func scalarJSON(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageJSON(v.Message())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return int32(v.Enum())
	default:
		return v.Interface() // ints of every width as numbers, bytes as base64
	}
}
