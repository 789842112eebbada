package convert

import (
	"encoding/json"
	"fmt"
)

// Dim is one dimension of a tensor shape. Param != "" for symbolic dims
// ("batch_size"); Value <= 0 and Param == "" means unknown.
type Dim struct {
	Value int64
	Param string
}

// Known reports whether the dimension has a fixed size.
func (d Dim) Known() bool { return d.Param == "" && d.Value > 0 }

// String writes the dimension as people read it: 64, batch_size or ?.
func (d Dim) String() string {
	switch {
	case d.Param != "":
		return d.Param
	case d.Value > 0:
		return fmt.Sprint(d.Value)
	default:
		return "?"
	}
}

// MarshalJSON writes a fixed dimension as a number, a symbolic one as its
// name and an unknown one as null, the form `m3ectl inspect --json` promises.
func (d Dim) MarshalJSON() ([]byte, error) {
	switch {
	case d.Param != "":
		return json.Marshal(d.Param)
	case d.Value > 0:
		return json.Marshal(d.Value)
	default:
		return []byte("null"), nil
	}
}

// UnmarshalJSON reads what MarshalJSON writes, so reports round-trip.
func (d *Dim) UnmarshalJSON(b []byte) error {
	*d = Dim{}
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &d.Param)
	}
	return json.Unmarshal(b, &d.Value)
}

// ValueInfo is a graph input or output: its name, element type and shape.
type ValueInfo struct {
	Name  string `json:"name"`
	DType string `json:"dtype"` // "int64", "int32", "float32", "float16", ...
	Shape []Dim  `json:"shape"`
}

// Architecture is the transformer encoder detected in a graph, in BERT's
// configuration terms (config.json's num_hidden_layers, hidden_size, ...).
// A field the graph does not reveal is 0.
type Architecture struct {
	Type         string `json:"type"` // "bert"
	Layers       int    `json:"layers"`
	Hidden       int    `json:"hidden"`
	Heads        int    `json:"heads"`
	Intermediate int    `json:"intermediate"`
	VocabSize    int    `json:"vocab_size"`
	MaxPositions int    `json:"max_positions"`
}

// Profile is a TensorRT optimisation profile: per dynamic input name, the
// full min/opt/max shapes (trtexec's --minShapes/--optShapes/--maxShapes).
type Profile struct {
	Min map[string][]int64 `json:"min"`
	Opt map[string][]int64 `json:"opt"`
	Max map[string][]int64 `json:"max"`
}

// Report is what Inspect learns about an ONNX model; its JSON form is the
// output of `m3ectl inspect --json`.
type Report struct {
	Path            string         `json:"path"`
	IRVersion       int64          `json:"ir_version"`
	Opset           int64          `json:"opset"` // version of the default ("" / "ai.onnx") domain
	Producer        string         `json:"producer"`
	ProducerVersion string         `json:"producer_version"`
	Inputs          []ValueInfo    `json:"inputs"`
	Outputs         []ValueInfo    `json:"outputs"`
	Ops             map[string]int `json:"ops"` // op type → node count; other domains as "domain.Op"
	// Parameters counts the elements of weight initializers: tensors of rank
	// ≥ 1 with a floating-point or 8/4-bit type. Integer (int16 and wider)
	// and bool initializers are index buffers and shape constants such as
	// position_ids, scalars are exporter constants, and Constant nodes hold
	// shape arithmetic, so none of those count; the figure then matches the
	// framework's own parameter count for the exported part of the model.
	Parameters int64 `json:"parameters"`
	// ParameterBytes is the storage of those parameters: elements × dtype size.
	ParameterBytes int64 `json:"parameter_bytes"`
	// ExternalData lists the external-data files, relative to the model's
	// folder, in first-use order; empty when every weight is inside the file.
	ExternalData []string      `json:"external_data"`
	Architecture *Architecture `json:"architecture"`
	// Pooled is true when the graph's output is already the sentence
	// embedding ([batch, hidden], see Report.Embeddings): embed, serve and
	// verify-engine then do no pooling of their own.
	Pooled           bool     `json:"pooled"`
	SuggestedProfile *Profile `json:"profile"`
}
