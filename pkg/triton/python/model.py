"""Triton Python-backend model written by m3ectl (python layout).

text (TYPE_STRING, one per row) -> BERT WordPiece tokens (BertTokenizerFast
from vocab.txt) -> TensorRT engine, or ONNX Runtime when there is no engine
or no GPU -> mean pooling under the attention mask -> L2 normalisation ->
embeddings (TYPE_FP32 [dim]). One response per request, in request order.

Every setting comes from config.pbtxt's parameters (engine, onnx, vocab,
max_length, pooling, normalize), so this file is the same for every model.
TensorRT is driven through its named-tensor API (set_input_shape,
set_tensor_address, execute_async_v3); device buffers are allocated once and
grown only when a batch needs more room, never per request.
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))


def _param(cfg, key, default):
    value = cfg.get("parameters", {}).get(key, {}).get("string_value", "")
    return value if value != "" else default


def _feed_value(name, ids, mask):
    """What each BERT input holds: ids, the mask, or zeros for token types."""
    if "input_ids" in name:
        return ids
    if "mask" in name:
        return mask
    if "token_type" in name or "segment" in name:
        return np.zeros_like(ids)
    raise ValueError("engine input %r is not input_ids, attention_mask or token_type_ids" % name)


class TensorRTRunner:
    """Runs a TensorRT engine (TensorRT >= 8.5 named-tensor API) on one GPU."""

    def __init__(self, path, device_id):
        import tensorrt as trt
        import torch

        self.trt, self.torch = trt, torch
        self.device = torch.device("cuda", device_id)
        torch.cuda.set_device(self.device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        with open(path, "rb") as f, trt.Runtime(self.logger) as runtime:
            self.engine = runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise RuntimeError("cannot deserialise %s: built by another TensorRT version or for another GPU?" % path)
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(device=self.device)
        self.inputs, self.outputs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append((name, dtype))
            else:
                self.outputs.append((name, dtype, len(self.engine.get_tensor_shape(name))))
        hidden = [o for o in self.outputs if o[2] == 3]
        if not hidden:
            raise RuntimeError("engine has no [batch, seq, hidden] output")
        self.hidden = hidden[0][0]
        self.buffers = {}

    def _buffer(self, name, dtype, n):
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < n:
            size = n if buf is None else max(n, 2 * buf.numel())
            buf = self.torch.empty(size, dtype=dtype, device=self.device)
            self.buffers[name] = buf
        return buf[:n]

    def embed(self, ids, mask, normalize):
        torch = self.torch
        with torch.cuda.stream(self.stream):
            for name, dtype in self.inputs:
                host = _feed_value(name, ids, mask)
                self.context.set_input_shape(name, tuple(host.shape))
                buf = self._buffer(name, dtype, host.size)
                buf.copy_(torch.from_numpy(np.ascontiguousarray(host).reshape(-1)).to(dtype), non_blocking=True)
                self.context.set_tensor_address(name, buf.data_ptr())
            shapes = {}
            for name, dtype, _ in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                buf = self._buffer(name, dtype, int(np.prod(shape)))
                self.context.set_tensor_address(name, buf.data_ptr())
                shapes[name] = shape
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            h = self.buffers[self.hidden][: int(np.prod(shapes[self.hidden]))].view(shapes[self.hidden]).float()
            m = torch.from_numpy(mask).to(self.device, non_blocking=True).unsqueeze(-1).float()
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out = pooled.cpu()
        self.stream.synchronize()
        return out.numpy()


class OnnxRuntimeRunner:
    """Runs the ONNX file with ONNX Runtime (CUDA when there, else CPU)."""

    def __init__(self, path, gpu, device_id):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
        self.session = ort.InferenceSession(path, providers=providers)
        self.inputs = [(i.name, np.int32 if i.type == "tensor(int32)" else np.int64) for i in self.session.get_inputs()]
        hidden = [o.name for o in self.session.get_outputs() if len(o.shape) == 3]
        if not hidden:
            raise RuntimeError("ONNX model has no [batch, seq, hidden] output")
        self.hidden = hidden[0]

    def embed(self, ids, mask, normalize):
        feeds = {name: _feed_value(name, ids, mask).astype(dtype) for name, dtype in self.inputs}
        h = self.session.run([self.hidden], feeds)[0].astype(np.float32)
        return pool(h, mask, normalize)


def pool(hidden, mask, normalize):
    """Mean over the tokens under the mask, then (optionally) L2 normalise."""
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    if normalize:
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return pooled


class TritonPythonModel:
    def initialize(self, args):
        from transformers import BertTokenizerFast

        cfg = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        gpu = args.get("model_instance_kind", "CPU") == "GPU"
        device_id = int(args.get("model_instance_device_id", "0") or 0)
        self.max_length = int(_param(cfg, "max_length", "512"))
        self.normalize = _param(cfg, "normalize", "true") == "true"
        if _param(cfg, "pooling", "mean") != "mean":
            raise ValueError("this model.py implements mean pooling only")
        vocab = os.path.join(version_dir, _param(cfg, "vocab", "vocab.txt"))
        self.tokenizer = BertTokenizerFast(vocab_file=vocab, do_lower_case=_param(cfg, "lowercase", "true") == "true")
        engine = os.path.join(version_dir, _param(cfg, "engine", "model.plan"))
        onnx = os.path.join(version_dir, _param(cfg, "onnx", "model.onnx"))
        if gpu and os.path.exists(engine):
            self.runner = TensorRTRunner(engine, device_id)
        elif os.path.exists(onnx):
            self.runner = OnnxRuntimeRunner(onnx, gpu, device_id)
        else:
            raise RuntimeError("no usable model: %s needs a GPU instance, and %s is missing" % (engine, onnx))

    def embed(self, texts):
        enc = self.tokenizer(texts, max_length=self.max_length, truncation=True, padding=True, return_tensors="np")
        return self.runner.embed(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64), self.normalize)

    def execute(self, requests):
        texts, counts = [], []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            texts.extend(r.decode("utf-8", errors="replace") if isinstance(r, bytes) else str(r) for r in rows)
            counts.append(len(rows))
        try:
            embeddings = self.embed(texts).astype(np.float32)
        except Exception as exc:  # every request still gets exactly one answer
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError("embedding failed: %s" % exc)) for _ in requests]
        responses, start = [], 0
        for n in counts:
            out = pb_utils.Tensor("embeddings", embeddings[start:start + n])
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += n
        return responses

    def finalize(self):
        self.runner = None
