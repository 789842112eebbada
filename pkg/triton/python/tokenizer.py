"""Triton Python-backend tokenizer step of an m3ectl ensemble.

text (TYPE_STRING, one per row) -> input_ids / attention_mask (and
token_type_ids when the engine takes them), padded to the longest row of the
request, in the integer type config.pbtxt declares (INT32 for TensorRT 8.x
engines, INT64 for TensorRT 10 and ONNX Runtime).
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


def _param(cfg, key, default):
    value = cfg.get("parameters", {}).get(key, {}).get("string_value", "")
    return value if value != "" else default


class TritonPythonModel:
    def initialize(self, args):
        from transformers import BertTokenizerFast

        cfg = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.max_length = int(_param(cfg, "max_length", "512"))
        vocab = os.path.join(version_dir, _param(cfg, "vocab", "vocab.txt"))
        self.tokenizer = BertTokenizerFast(vocab_file=vocab, do_lower_case=_param(cfg, "lowercase", "true") == "true")
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in cfg["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            texts = [r.decode("utf-8", errors="replace") if isinstance(r, bytes) else str(r) for r in rows]
            enc = self.tokenizer(texts, max_length=self.max_length, truncation=True, padding=True, return_tensors="np")
            tensors = []
            for name, dtype in self.outputs:
                if "input_ids" in name:
                    value = enc["input_ids"]
                elif "mask" in name:
                    value = enc["attention_mask"]
                else:
                    value = np.zeros_like(enc["input_ids"])
                tensors.append(pb_utils.Tensor(name, value.astype(dtype)))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
