# Stand-in for NVIDIA's cuda-python (see bindings/runtime.py).
