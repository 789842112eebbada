"""Triton Python-backend pooling step of an m3ectl ensemble.

hidden states [seq, hidden] per row + attention_mask [seq] -> mean over the
tokens under the mask -> L2 normalisation -> embeddings (TYPE_FP32 [dim]).
"""
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.hidden = cfg["input"][0]["name"]
        params = cfg.get("parameters", {})
        self.normalize = params.get("normalize", {}).get("string_value", "true") == "true"

    def execute(self, requests):
        responses = []
        for request in requests:
            h = pb_utils.get_input_tensor_by_name(request, self.hidden).as_numpy().astype(np.float32)
            m = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()[:, :, None].astype(np.float32)
            pooled = (h * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            if self.normalize:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("embeddings", pooled.astype(np.float32))]))
        return responses
