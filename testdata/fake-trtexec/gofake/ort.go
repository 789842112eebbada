package main

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)

type feed struct {
	name, dtype, onnxDType string
	shape                  []int64
	values                 []int64
}

type result struct {
	name   string
	shape  []int64
	values []float32
}

// run computes the engine's outputs: its ONNX through ONNX Runtime on the
// CPU, fed in the ONNX's own integer types.
func run(eng engineFile, feeds []feed) ([]result, error) {
	if err := onnxrt.Init(""); err != nil {
		return nil, err
	}
	var inNames, outNames []string
	for _, f := range feeds {
		inNames = append(inNames, f.name)
	}
	for _, o := range eng.Outputs {
		outNames = append(outNames, o.Name)
	}
	sess, err := ort.NewDynamicAdvancedSession(eng.ONNX, inNames, outNames, nil)
	if err != nil {
		return nil, err
	}
	defer sess.Destroy()
	ins := make([]ort.Value, len(feeds))
	defer func() {
		for _, v := range ins {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, f := range feeds {
		shape := ort.NewShape(f.shape...)
		switch f.onnxDType {
		case "int64":
			ins[i], err = ort.NewTensor(shape, f.values)
		case "int32":
			v := make([]int32, len(f.values))
			for k, x := range f.values {
				v[k] = int32(x)
			}
			ins[i], err = ort.NewTensor(shape, v)
		default:
			err = fmt.Errorf("input %s: dtype %s", f.name, f.onnxDType)
		}
		if err != nil {
			return nil, err
		}
	}
	outs := make([]ort.Value, len(outNames))
	if err := sess.Run(ins, outs); err != nil {
		return nil, err
	}
	var rs []result
	for i, o := range outs {
		defer o.Destroy()
		t, ok := o.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("output %s is not float32", outNames[i])
		}
		rs = append(rs, result{name: outNames[i], shape: t.GetShape(), values: append([]float32(nil), t.GetData()...)})
	}
	return rs, nil
}
