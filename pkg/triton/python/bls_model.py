

# ---------------------------------------------------------------------------
# The Triton Python model (m3ectl repo --layout bls): text in, embeddings out.
# Every request of one execute() is tokenised, all texts are padded once to
# the longest row, one BLS request runs the encoder model (tensorrt_plan or
# onnxruntime_onnx, whose graph already pools and normalises), and the rows
# are split back per request. numpy, the standard library and
# triton_python_backend_utils only: the stock tritonserver image has nothing
# else (triton-inference-server/server build.py@r26.08 installs numpy<2).
# ---------------------------------------------------------------------------

_NP = {"TYPE_INT32": np.int32, "TYPE_INT64": np.int64}


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        p = _params(cfg)
        self.tokenizer, _ = _open_tokenizer(args, p)
        self.encoder = p["encoder_model"]
        # "input_ids:TYPE_INT64,attention_mask:TYPE_INT64": the encoder's
        # inputs with the dtype its config.pbtxt declares (validated by m3ectl).
        self.inputs = []
        for item in p["encoder_inputs"].split(","):
            name, dtype = item.split(":")
            self.inputs.append((name, _NP[dtype]))
        self.output = p["encoder_output"]
        self.pad_id = int(p.get("pad_id", "0"))
        out = pb_utils.get_output_config_by_name(cfg, "embeddings")
        self.out_dtype = pb_utils.triton_string_to_numpy(out["data_type"])
        self.dim = int(out["dims"][-1])

    def execute(self, requests):
        return _answer_rows(requests, self.tokenizer, self._encode, "encoder %s" % self.encoder)

    def _encode(self, rows):
        tensors = [pb_utils.Tensor(name, a) for name, a in _encoder_inputs(rows, self.pad_id, self.inputs)]
        # A tensorrt_plan encoder leaves its output in GPU memory, and BLS
        # hands outputs back where the model put them unless told otherwise;
        # as_numpy() refuses GPU tensors (python_backend@r26.07 README "BLS",
        # preferred_memory since 23.04; src/pb_tensor.cc AsNumpy).
        resp = pb_utils.InferenceRequest(model_name=self.encoder, requested_output_names=[self.output],
                                         inputs=tensors,
                                         preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)).exec()
        if resp.has_error():
            raise RuntimeError(resp.error().message())
        out = pb_utils.get_output_tensor_by_name(resp, self.output)
        if out is None:
            raise RuntimeError("no output %s" % self.output)
        emb = out.as_numpy()
        if emb.shape != (len(rows), self.dim):
            raise RuntimeError("output %s has shape %s, want [%d, %d]" % (self.output, list(emb.shape), len(rows), self.dim))
        return emb.astype(self.out_dtype, copy=False)
