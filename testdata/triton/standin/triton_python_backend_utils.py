# A strict stand-in for Triton's triton_python_backend_utils, for running the
# Python models m3ectl writes under plain CPython in `make test`.
#
# It implements only the surface python_backend documents for the r26.x
# releases (README.md and src/resources/triton_python_backend_utils.py of
# triton-inference-server/python_backend@r26.07): Tensor(name, array) with
# name()/as_numpy()/is_cpu(), get_input_tensor_by_name, get_output_tensor_by_name,
# get_input_config_by_name, get_output_config_by_name,
# triton_string_to_numpy, triton_to_numpy_type, numpy_to_triton_type,
# InferenceRequest(model_name, requested_output_names, inputs, ...) with
# exec() for BLS and its preferred_memory (PreferredMemory,
# TRITONSERVER_MEMORY_CPU/GPU), InferenceResponse(output_tensors, error) with
# output_tensors()/has_error()/error(), TritonError(message, code) with
# message()/code(), TritonModelException. Anything else is an
# AttributeError, as it would be for a name Triton does not have.
#
# BLS: exec() posts the request to the loopback server the Go test runs
# (M3ECTL_STANDIN_EXEC_URL), which checks it against the target model's
# config.pbtxt the way Triton core checks a request and runs the model's
# ONNX graph with ONNX Runtime.

import base64
import json
import os
import urllib.error
import urllib.request

import numpy as np

_TYPES = [
    ("TYPE_BOOL", "BOOL", np.bool_),
    ("TYPE_UINT8", "UINT8", np.uint8),
    ("TYPE_UINT16", "UINT16", np.uint16),
    ("TYPE_UINT32", "UINT32", np.uint32),
    ("TYPE_UINT64", "UINT64", np.uint64),
    ("TYPE_INT8", "INT8", np.int8),
    ("TYPE_INT16", "INT16", np.int16),
    ("TYPE_INT32", "INT32", np.int32),
    ("TYPE_INT64", "INT64", np.int64),
    ("TYPE_FP16", "FP16", np.float16),
    ("TYPE_FP32", "FP32", np.float32),
    ("TYPE_FP64", "FP64", np.float64),
    ("TYPE_STRING", "BYTES", np.object_),
]
# The DataType enum numbers of model_config.proto, as triton_to_numpy_type takes them.
_ENUM = {1: np.bool_, 2: np.uint8, 3: np.uint16, 4: np.uint32, 5: np.uint64, 6: np.int8,
         7: np.int16, 8: np.int32, 9: np.int64, 10: np.float16, 11: np.float32, 12: np.float64,
         13: np.object_}


def triton_string_to_numpy(triton_type_string):
    for cfg, _, t in _TYPES:
        if cfg == triton_type_string:
            return t
    raise KeyError(triton_type_string)  # the real one indexes a dict the same way


def triton_to_numpy_type(data_type):
    return _ENUM.get(data_type)


def numpy_to_triton_type(data_type):
    for k, v in _ENUM.items():
        if v == data_type:
            return k
    return None


def _wire(dtype):
    for _, wire, t in _TYPES:
        if np.dtype(t) == dtype:
            return wire
    raise TritonModelException("Tensor: numpy dtype %s has no Triton type" % dtype)


class TritonError(Exception):
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = range(8)

    def __init__(self, message, code=0):
        super().__init__(message)
        if not isinstance(message, str):
            raise TypeError("TritonError: message must be str")
        self._message = message
        self._code = code

    def message(self):
        return self._message

    def code(self):
        return self._code


class TritonModelException(Exception):
    pass


TRITONSERVER_MEMORY_CPU, TRITONSERVER_MEMORY_CPU_PINNED, TRITONSERVER_MEMORY_GPU = 0, 1, 2


class PreferredMemory:
    def __init__(self, preferred_memory_type, preferred_device_id=0):
        if preferred_memory_type not in (TRITONSERVER_MEMORY_CPU, TRITONSERVER_MEMORY_GPU):
            raise TypeError("PreferredMemory: memory type must be TRITONSERVER_MEMORY_CPU or _GPU")
        self.preferred_memory_type = preferred_memory_type
        self.preferred_device_id = preferred_device_id


class Tensor:
    def __init__(self, name, array):
        if not isinstance(name, str):
            raise TypeError("Tensor: name must be str")
        if not isinstance(array, np.ndarray):
            raise TypeError("Tensor: expects a numpy array, got %s" % type(array).__name__)
        if array.dtype == np.object_:
            for v in array.reshape(-1):
                if not isinstance(v, (bytes, str)):
                    raise TypeError("Tensor %s: BYTES elements must be bytes or str" % name)
        _wire(array.dtype)
        self._name = name
        self._array = array
        self._gpu = False

    def name(self):
        return self._name

    def is_cpu(self):
        return not self._gpu

    def as_numpy(self):
        if self._gpu:  # src/pb_tensor.cc@r26.07
            raise TritonModelException("Tensor is stored in GPU and cannot be converted to NumPy.")
        return self._array


def get_input_tensor_by_name(inference_request, name):
    for t in inference_request.inputs():
        if t.name() == name:
            return t
    return None


def get_output_tensor_by_name(inference_response, name):
    for t in inference_response.output_tensors():
        if t.name() == name:
            return t
    return None


def get_input_config_by_name(model_config, name):
    for io in model_config.get("input", []):
        if io["name"] == name:
            return io
    return None


def get_output_config_by_name(model_config, name):
    for io in model_config.get("output", []):
        if io["name"] == name:
            return io
    return None


class InferenceResponse:
    def __init__(self, output_tensors=None, error=None):
        if output_tensors is None:
            output_tensors = []
        if not isinstance(output_tensors, list) or not all(isinstance(t, Tensor) for t in output_tensors):
            raise TypeError("InferenceResponse: output_tensors must be a list of pb_utils.Tensor")
        if error is not None and not isinstance(error, TritonError):
            raise TypeError("InferenceResponse: error must be a pb_utils.TritonError")
        self._outputs = output_tensors
        self._error = error

    def output_tensors(self):
        return self._outputs

    def has_error(self):
        return self._error is not None

    def error(self):
        return self._error


_OPTIONAL = {"request_id", "correlation_id", "model_version", "flags", "timeout",
             "preferred_memory", "trace", "parameters"}


class InferenceRequest:
    def __init__(self, model_name=None, requested_output_names=None, inputs=None, **optional):
        bad = set(optional) - _OPTIONAL
        if bad:
            raise TypeError("InferenceRequest: unexpected arguments %s" % sorted(bad))
        if not isinstance(model_name, str) or not model_name:
            raise TypeError("InferenceRequest: model_name is required")
        if not isinstance(requested_output_names, list) or not all(isinstance(n, str) for n in requested_output_names):
            raise TypeError("InferenceRequest: requested_output_names must be a list of str")
        if not isinstance(inputs, list) or not all(isinstance(t, Tensor) for t in inputs):
            raise TypeError("InferenceRequest: inputs must be a list of pb_utils.Tensor")
        self._model = model_name
        self._outputs = requested_output_names
        self._inputs = inputs
        self._version = optional.get("model_version", -1)
        pm = optional.get("preferred_memory")
        if pm is not None and not isinstance(pm, PreferredMemory):
            raise TypeError("InferenceRequest: preferred_memory must be a pb_utils.PreferredMemory")
        self._preferred = pm

    def inputs(self):
        return self._inputs

    def requested_output_names(self):
        return self._outputs

    def exec(self, decoupled=False):
        if decoupled:
            raise TritonModelException("stand-in: decoupled BLS is not used by m3ectl's models")
        url = os.environ.get("M3ECTL_STANDIN_EXEC_URL")
        if not url:
            raise TritonModelException("stand-in: M3ECTL_STANDIN_EXEC_URL is not set")
        body = {"model_name": self._model, "model_version": self._version,
                "outputs": self._outputs, "inputs": []}
        for t in self._inputs:
            a = t.as_numpy()
            if a.dtype == np.object_:
                raise TritonModelException("stand-in: BYTES inputs are not sent over BLS by m3ectl's models")
            body["inputs"].append({"name": t.name(), "datatype": _wire(a.dtype), "shape": list(a.shape),
                                   "data": base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode()})
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                reply = json.loads(r.read())
        except urllib.error.HTTPError as e:
            reply = json.loads(e.read())
        if "error" in reply:
            return InferenceResponse(error=TritonError(reply["error"]))
        outs = []
        for o in reply["outputs"]:
            dt = {w: t for _, w, t in _TYPES}[o["datatype"]]
            a = np.frombuffer(base64.b64decode(o["data"]), dtype=np.dtype(dt).newbyteorder("<")).reshape(o["shape"])
            t = Tensor(o["name"], a.astype(dt))
            # Outputs stay where the model produced them (on the GPU for a
            # KIND_GPU model) unless preferred_memory asks for the CPU.
            wants_cpu = self._preferred is not None and self._preferred.preferred_memory_type == TRITONSERVER_MEMORY_CPU
            t._gpu = reply.get("device") == "gpu" and not wants_cpu
            outs.append(t)
        return InferenceResponse(output_tensors=outs)
