

# ---------------------------------------------------------------------------
# The tokenizer step of m3ectl's ensemble layout: text in, the encoder's
# inputs out. Every response of one execute() is padded to the same length,
# the smallest bucket that holds the longest row, so that Triton's dynamic
# batcher in front of the encoder (which merges only requests of equal
# shape) can merge them. numpy, the standard library and
# triton_python_backend_utils only.
# ---------------------------------------------------------------------------

import os as _os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        p = {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}
        vdir = _os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = BertTokenizer(_os.path.join(vdir, p["vocab"]), _os.path.join(vdir, p["tokenizer_spec"]),
                                       max_length=int(p["max_length"]))
        self.buckets = sorted(int(b) for b in p["pad_buckets"].split(","))
        self.pad_id = int(p.get("pad_id", "0"))
        self.outputs = []
        for out in cfg["output"]:
            self.outputs.append((out["name"], pb_utils.triton_string_to_numpy(out["data_type"])))

    def _texts(self, request):
        t = pb_utils.get_input_tensor_by_name(request, "text")
        if t is None:
            raise ValueError("input 'text' is missing")
        a = t.as_numpy()
        if a.ndim != 2 or a.shape[1] != 1:
            raise ValueError("input 'text' must have shape [N, 1] (one text per row), got %s" % list(a.shape))
        texts = []
        for v in a.reshape(-1):
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError("input 'text' holds invalid UTF-8")
            texts.append(v)
        return texts

    def execute(self, requests):
        responses = [None] * len(requests)
        encoded = []
        for i, request in enumerate(requests):
            try:
                encoded.append((i, [self.tokenizer.encode(s) for s in self._texts(request)]))
            except ValueError as e:
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
        longest = max((len(r) for _, rows in encoded for r in rows), default=1)
        width = next((b for b in self.buckets if b >= longest), longest)
        for i, rows in encoded:
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                ids[j, :len(r)] = r
                mask[j, :len(r)] = 1
            tensors = []
            for name, dtype in self.outputs:
                a = mask if name == "attention_mask" else (np.zeros_like(mask) if name == "token_type_ids" else ids)
                tensors.append(pb_utils.Tensor(name, a.astype(dtype)))
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses
