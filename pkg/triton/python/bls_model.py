

# ---------------------------------------------------------------------------
# The Triton Python model (m3ectl repo --layout bls): text in, embeddings out.
# Every request of one execute() is tokenised, all texts are padded once to
# the longest row, one BLS request runs the encoder model (tensorrt_plan or
# onnxruntime_onnx, whose graph already pools and normalises), and the rows
# are split back per request. numpy, the standard library and
# triton_python_backend_utils only: the stock tritonserver image has nothing
# else (triton-inference-server/server build.py@r26.08 installs numpy<2).
# ---------------------------------------------------------------------------

import os as _os

import numpy as np
import triton_python_backend_utils as pb_utils

_NP = {"TYPE_INT32": np.int32, "TYPE_INT64": np.int64}


def _params(cfg):
    return {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        p = _params(cfg)
        vdir = _os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = BertTokenizer(_os.path.join(vdir, p["vocab"]), _os.path.join(vdir, p["tokenizer_spec"]),
                                       max_length=int(p["max_length"]))
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
        rows, owners = [], []
        for i, request in enumerate(requests):
            try:
                ids = [self.tokenizer.encode(s) for s in self._texts(request)]
            except ValueError as e:
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
                continue
            owners.append((i, len(rows), len(ids)))
            rows.extend(ids)
        if rows:
            try:
                emb = self._encode(rows)
            except Exception as e:  # the encoder failed: every waiting request hears why
                msg = "encoder %s: %s" % (self.encoder, e)
                for i, _, _ in owners:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(msg))
                return responses
            for i, start, n in owners:
                out = pb_utils.Tensor("embeddings", np.ascontiguousarray(emb[start:start + n]))
                responses[i] = pb_utils.InferenceResponse(output_tensors=[out])
        return responses

    def _encode(self, rows):
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            ids[j, :len(r)] = r
            mask[j, :len(r)] = 1
        tensors = []
        for name, dtype in self.inputs:
            if name == "attention_mask":
                a = mask
            elif name == "token_type_ids":
                a = np.zeros_like(mask)
            else:
                a = ids
            tensors.append(pb_utils.Tensor(name, a.astype(dtype)))
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
