// Package cuda is m3ectl's own GPU engine for BERT sentence encoders: the
// model's safetensors weights on an NVIDIA GPU, fp16 tensor-core GEMMs through
// cuBLASLt (bias fused into the epilogue), and its own kernels (embedding +
// LayerNorm, residual + LayerNorm, exact GELU, tensor-core attention over
// packed rows, pooling + L2 normalisation) compiled at run time by NVRTC.
//
// Nothing CUDA is linked at build time: libcuda.so.1, libcublasLt and
// libnvrtc are opened with purego when an engine is opened, so the binary
// builds and its tests pass on machines without a GPU. Batches stay packed
// end to end (engine.Batch's layout), so no work is spent on padding; the
// whole forward pass of a batch shape is captured once as a CUDA graph
// (shapes bucketed) and replayed.
//
// The package registers the backend "cuda" with pkg/engine.
package cuda
