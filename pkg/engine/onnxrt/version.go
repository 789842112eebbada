package onnxrt

import ort "github.com/yalue/onnxruntime_go"

// Version loads ONNX Runtime (as Init does) and returns its version and the
// library it came from.
func Version(explicit string) (version, path string, err error) {
	if err := Init(explicit); err != nil {
		return "", "", err
	}
	return ort.GetVersion(), LoadedLibrary(), nil
}
