// Package convert reads ONNX graphs and turns them into what the deployment
// steps need: Inspect describes a model (inputs, outputs, ops, parameters,
// external data, the BERT architecture behind it and the TensorRT shape
// profile that suits it), and the trtexec files build and verify TensorRT
// engines from it.
//
// Models are decoded with the protoc-generated types of package onnxpb,
// skipping the values of large tensors on the wire: parameters are counted
// from dims and data types, so the weights are never read or held in
// memory, whether inside the .onnx file or in external-data files (which
// are only checked with stat).
package convert
