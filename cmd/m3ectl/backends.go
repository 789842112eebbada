package main

// The inference backends the binary carries. Each registers itself with
// engine.RegisterBackend; the CUDA engine opens its libraries only at run time,
// so the binary builds and runs on machines without CUDA. The null engine
// (hidden from --engine's help) computes nothing: it is for measuring the
// server's own cost per request.
import (
	_ "github.com/m3ectl/m3ectl/pkg/engine/cuda"
	_ "github.com/m3ectl/m3ectl/pkg/engine/null"
	_ "github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)
