package serve

import (
	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// marshalConfigJSON writes a message as Triton's config endpoint does
// (see tritonpb.ConfigJSON): 64-bit integers as numbers, which clients that
// read dims as numbers (perf_analyzer, tritonclient users) need.
func marshalConfigJSON(m proto.Message) ([]byte, error) { return tritonpb.ConfigJSON(m) }
