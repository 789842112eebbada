package convert

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

var ortInitMu sync.Mutex

// ortLibrary finds the ONNX Runtime shared library: explicit, then
// $ONNXRUNTIME_LIB, then scripts/setup-ort.sh's location next to the working
// folder or the binary.
func ortLibrary(explicit string) (string, error) {
	cands := []string{explicit, os.Getenv("ONNXRUNTIME_LIB")}
	rel := filepath.Join("third_party", "onnxruntime", "libonnxruntime.so")
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			cands = append(cands, filepath.Join(d, rel))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "..", rel))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", errors.New("ONNX Runtime library not found: run scripts/setup-ort.sh or set ONNXRUNTIME_LIB")
}

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
