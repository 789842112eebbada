package serve

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// Limits bound what one request may hold, so that decoding cannot expand a
// body many times over (an 18 MB body of `{}` used to cost 2.5 GB). They are
// checked while scanning the body, before anything is allocated for it; the
// model's own limits (max_batch_size, the queue bound) bound the texts.
type Limits struct {
	// MaxInputs and MaxOutputs bound the tensors of one request (default 8
	// each; these models have one input and one output).
	MaxInputs, MaxOutputs int
	// MaxTexts bounds the texts of one KServe request for a model whose
	// max_batch_size is 0 (no batching); otherwise max_batch_size does.
	// Default 1024, the default queue bound.
	MaxTexts int
	// MaxDepth bounds JSON nesting (default 32) and MaxKeys the keys of one
	// JSON object (default 64).
	MaxDepth, MaxKeys int
}

// maxBytesElements bounds the elements of one BYTES tensor in binary form
// (HTTP binary extension, gRPC raw_input_contents) whatever the model: each
// costs a string header on decoding, and no model queue holds more.
const maxBytesElements = 1 << 16

func (l *Limits) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxInputs, 8)
	def(&l.MaxOutputs, 8)
	def(&l.MaxTexts, 1024)
	def(&l.MaxDepth, 32)
	def(&l.MaxKeys, 64)
}

// kserveLimits are the scan's bounds for a KServe request to model m.
func (s *Server) kserveLimits(m *repository.Model) jsonLimits {
	l := s.cfg.Limits
	lim := jsonLimits{depth: l.MaxDepth, keys: l.MaxKeys, inputs: l.MaxInputs, outputs: l.MaxOutputs,
		stringBytes: s.cfg.MaxRequestBytes, elements: l.MaxTexts, elementsWhat: "data elements", unit: "--max-request-texts", elementsKind: kindInvalidInput}
	if mb := m.MaxBatchSize(); mb > 0 {
		lim.elements = mb
		lim.unit = fmt.Sprintf("model %s's max_batch_size %d", m.Name(), mb)
	}
	return lim
}

// openAIScanLimits are the scan's bounds for an OpenAI request, before its
// model is known: checkFitsQueue applies the model's own bound after.
func (s *Server) openAIScanLimits() jsonLimits {
	l := s.cfg.Limits
	return jsonLimits{depth: l.MaxDepth, keys: l.MaxKeys, stringBytes: s.cfg.MaxRequestBytes,
		elements: maxBytesElements, elementsWhat: "input texts", unit: "split the request", elementsKind: kindTooLarge}
}

// checkDataDepth refuses data nested deeper than its input's declared shape.
func checkDataDepth(call *inferCall, c *jsonCounts) error {
	for i, in := range call.inputs {
		if i < len(c.dataDepth) && c.dataDepth[i] > max(len(in.shape), 1) {
			return invalidf("input %q: data is nested %d deep but its shape %v has %d dimensions", in.name, c.dataDepth[i], in.shape, len(in.shape))
		}
	}
	return nil
}

// SetMemoryLimit gives the Go runtime a soft memory limit, unless
// GOMEMLIMIT chooses one: with GOGC 400 the heap may otherwise grow to five
// times its live size before collecting, which after a burst of large
// bodies is gigabytes. limit 0 means the in-flight budget plus 128 MiB of
// headroom for the live heap; negative turns the limit off. The serve
// command calls it once at start.
func SetMemoryLimit(limit, inflightBytes int64) {
	if os.Getenv("GOMEMLIMIT") != "" || limit < 0 {
		return
	}
	if limit == 0 {
		limit = inflightBytes + 128<<20
	}
	debug.SetMemoryLimit(min(limit, math.MaxInt64))
}
