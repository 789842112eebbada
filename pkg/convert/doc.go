// Package convert reads ONNX graphs and turns them into what the deployment
// steps need: Inspect describes a model (inputs, outputs, ops, parameters,
// external data, the BERT architecture behind it and the TensorRT shape
// profile that suits it), and the trtexec files build and verify TensorRT
// engines from it.
//
// Models are decoded with the protoc-generated types of package onnxpb. The
// reader memory-maps the .onnx file (where the platform allows), decodes it
// once, counts every initializer from its dims and data type, and then drops
// the raw bytes of all but small tensors, so a model is never held twice in
// memory; external-data files are only checked with stat, never read.
package convert
