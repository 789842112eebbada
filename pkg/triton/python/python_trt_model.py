

# ---------------------------------------------------------------------------
# The article's single Python model (m3ectl repo --layout python): tokenise,
# run the pooled TensorRT engine, answer each request once. TensorRT's
# named-tensor API only (set_input_shape with its result checked,
# set_tensor_address, execute_async_v3: TensorRT 8.5 and later, nothing
# removed in 10 or 11), device buffers from cuda-python, allocated once and
# grown only when a batch needs more. Needs `pip install -r
# requirements.txt` in the image: the stock image has neither module.
# ---------------------------------------------------------------------------

import tensorrt as trt

try:
    from cuda.bindings import runtime as cudart  # cuda-python 12.8 and later
except ImportError:  # older cuda-python
    from cuda import cudart


def _cuda(result):
    err = result[0]
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError("CUDA error %s" % err)
    return result[1:]


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        p = _params(cfg)
        self.tokenizer, vdir = _open_tokenizer(args, p)
        self.pad_id = int(p.get("pad_id", "0"))
        _cuda(cudart.cudaSetDevice(int(args["model_instance_device_id"])))
        self.logger = trt.Logger(trt.Logger.WARNING)
        with open(_os.path.join(vdir, p["engine"]), "rb") as f:
            self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise pb_utils.TritonModelException(
                "TensorRT %s could not load %s: it was built with TensorRT %s" % (trt.__version__, p["engine"], p["tensorrt_version"]))
        self.context = self.engine.create_execution_context()
        self.stream = _cuda(cudart.cudaStreamCreate())[0]
        self.inputs = []
        for item in p["engine_inputs"].split(","):
            name, _ = item.split(":")
            self.inputs.append((name, trt.nptype(self.engine.get_tensor_dtype(name))))
        self.output = p["engine_output"]
        self.out_dtype = trt.nptype(self.engine.get_tensor_dtype(self.output))
        self.dim = int(pb_utils.get_output_config_by_name(cfg, "embeddings")["dims"][-1])
        self.buffers = {}  # tensor name -> (device pointer, bytes)

    def _buffer(self, name, nbytes):
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _cuda(cudart.cudaFree(ptr))
            ptr = _cuda(cudart.cudaMalloc(nbytes))[0]
            self.buffers[name] = (ptr, nbytes)
        return ptr

    def execute(self, requests):
        return _answer_rows(requests, self.tokenizer, self._run, "TensorRT")

    def _run(self, rows):
        keep = []  # host arrays must outlive the asynchronous copies
        for name, a in _encoder_inputs(rows, self.pad_id, self.inputs):
            keep.append(a)
            if not self.context.set_input_shape(name, a.shape):
                raise RuntimeError("input %s: shape %s is outside the engine's profile" % (name, list(a.shape)))
            ptr = self._buffer(name, a.nbytes)
            _cuda(cudart.cudaMemcpyAsync(ptr, a.ctypes.data, a.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
            if not self.context.set_tensor_address(name, ptr):
                raise RuntimeError("set_tensor_address(%s) failed" % name)
        shape = tuple(self.context.get_tensor_shape(self.output))
        if shape != (len(rows), self.dim):
            raise RuntimeError("output %s has shape %s, want [%d, %d]" % (self.output, list(shape), len(rows), self.dim))
        host = np.empty(shape, dtype=self.out_dtype)
        ptr = self._buffer(self.output, host.nbytes)
        if not self.context.set_tensor_address(self.output, ptr):
            raise RuntimeError("set_tensor_address(%s) failed" % self.output)
        # cuda-python's cudaStream_t is not an int; TensorRT takes the handle as one.
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("execute_async_v3 failed")
        _cuda(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        _cuda(cudart.cudaStreamSynchronize(self.stream))
        return host.astype(np.float32, copy=False)

    def finalize(self):
        for ptr, _ in self.buffers.values():
            cudart.cudaFree(ptr)
        self.buffers = {}
