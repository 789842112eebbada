

# ---------------------------------------------------------------------------
# The tokenizer step of m3ectl's ensemble layout: text in, the encoder's
# inputs out. Every response of one execute() is padded to the same length,
# the smallest bucket that holds the longest row, so that Triton's dynamic
# batcher in front of the encoder (which merges only requests of equal
# shape) can merge them. numpy, the standard library and
# triton_python_backend_utils only.
# ---------------------------------------------------------------------------

class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        p = _params(cfg)
        self.tokenizer, _ = _open_tokenizer(args, p)
        self.buckets = sorted(int(b) for b in p["pad_buckets"].split(","))
        self.pad_id = int(p.get("pad_id", "0"))
        self.outputs = []
        for out in cfg["output"]:
            self.outputs.append((out["name"], pb_utils.triton_string_to_numpy(out["data_type"])))

    def execute(self, requests):
        responses = [None] * len(requests)
        encoded = []
        for i, request in enumerate(requests):
            try:
                encoded.append((i, [self.tokenizer.encode(s) for s in _texts(request)]))
            except ValueError as e:
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
        longest = max((len(r) for _, rows in encoded for r in rows), default=1)
        width = next((b for b in self.buckets if b >= longest), longest)
        for i, rows in encoded:
            tensors = [pb_utils.Tensor(name, a) for name, a in _encoder_inputs(rows, self.pad_id, self.outputs, width)]
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses
