package convert

import (
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/m3ectl/m3ectl/pkg/ortlib"
)

var ortInitMu sync.Mutex

// ortLibrary finds the ONNX Runtime shared library exactly as serve does
// (ortlib.Find), so verify-engine --onnx loads the same library.
func ortLibrary(explicit string) (string, error) { return ortlib.Find(explicit) }

// ortInit starts the process-wide ONNX Runtime environment unless another
// package already has.
func ortInit(lib string) error {
	ortInitMu.Lock()
	defer ortInitMu.Unlock()
	if ort.IsInitialized() {
		return nil
	}
	path, err := ortLibrary(lib)
	if err != nil {
		return err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(); err != nil {
		return fmt.Errorf("initialise ONNX Runtime (%s): %w", path, err)
	}
	return nil
}

// ortHiddenStates runs the padded batch through ONNX Runtime on the CPU,
// with the graph's own input dtypes, and returns output's values.
func ortHiddenStates(lib, onnxPath string, rep *Report, in *parityInputs, output string) ([]float32, error) {
	if err := ortInit(lib); err != nil {
		return nil, err
	}
	sess, err := ort.NewDynamicAdvancedSession(onnxPath, in.names, []string{output}, nil)
	if err != nil {
		return nil, fmt.Errorf("ONNX Runtime session for %s: %w", onnxPath, err)
	}
	defer sess.Destroy()
	shape := ort.NewShape(int64(in.batch), int64(in.seq))
	inputs := make([]ort.Value, len(in.names))
	defer func() {
		for _, v := range inputs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, name := range in.names {
		var dt string
		for _, v := range rep.Inputs {
			if v.Name == name {
				dt = v.DType
			}
		}
		vals := in.values[name]
		switch dt {
		case "int64":
			inputs[i], err = ort.NewTensor(shape, append([]int64(nil), vals...))
		case "int32":
			v32 := make([]int32, len(vals))
			for j, v := range vals {
				v32[j] = int32(v)
			}
			inputs[i], err = ort.NewTensor(shape, v32)
		default:
			return nil, fmt.Errorf("ONNX input %s has dtype %q; verify-engine feeds only int32/int64", name, dt)
		}
		if err != nil {
			return nil, fmt.Errorf("ONNX Runtime input %s: %w", name, err)
		}
	}
	outputs := []ort.Value{nil}
	if err := sess.Run(inputs, outputs); err != nil {
		return nil, fmt.Errorf("ONNX Runtime run: %w", err)
	}
	defer outputs[0].Destroy()
	t, ok := outputs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("ONNX output %s is not float32", output)
	}
	return append([]float32(nil), t.GetData()...), nil
}
