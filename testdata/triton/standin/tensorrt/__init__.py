# A strict stand-in for NVIDIA's tensorrt Python module, for executing
# m3ectl's --layout python model.py under plain CPython. It has only the
# named-tensor API that TensorRT 8.6, 10.x and 11.x share (Logger, Runtime,
# ICudaEngine.num_io_tensors/get_tensor_name/get_tensor_mode/
# get_tensor_dtype/get_tensor_shape/create_execution_context,
# IExecutionContext.set_input_shape/get_tensor_shape/set_tensor_address/
# execute_async_v3, nptype, DataType, TensorIOMode); the binding-index API
# that TensorRT 10 removed (num_bindings, get_binding_index,
# set_binding_shape, execute_async_v2, ...) is absent, so using it fails.
#
# __version__ is M3ECTL_STANDIN_TRT_VERSION. An "engine" is the JSON the Go
# test writes as model.plan: the TensorRT version that built it (an engine
# deserialises only under the same major.minor, as with real TensorRT), its
# I/O tensors with the profile, and the ONNX graph that computes it, run
# through ONNX Runtime by the test's loopback server.

import base64
import json
import os
import urllib.request

import numpy as np

from cuda.bindings import runtime as _cudart

__version__ = os.environ.get("M3ECTL_STANDIN_TRT_VERSION", "")
if not __version__:
    raise ImportError("stand-in tensorrt: M3ECTL_STANDIN_TRT_VERSION is not set")


class DataType:
    FLOAT, HALF, INT8, INT32, BOOL, UINT8, FP8, BF16, INT64 = range(9)


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32,
       DataType.INT64: np.int64, DataType.BOOL: np.bool_, DataType.INT8: np.int8, DataType.UINT8: np.uint8}
_BY_NAME = {"float32": DataType.FLOAT, "int32": DataType.INT32, "int64": DataType.INT64, "float16": DataType.HALF}


def nptype(dtype):
    return _NP[dtype]


class TensorIOMode:
    NONE, INPUT, OUTPUT = range(3)


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity=WARNING):
        self.min_severity = min_severity
        self.messages = []

    def log(self, severity, msg):
        self.messages.append(msg)


class Runtime:
    def __init__(self, logger):
        if not isinstance(logger, Logger):
            raise TypeError("Runtime(logger): expects a tensorrt.Logger")
        self._logger = logger

    def deserialize_cuda_engine(self, serialized_engine):
        try:
            plan = json.loads(bytes(serialized_engine))
            built = plan["m3ectl_fake_trt"]
        except (ValueError, KeyError, TypeError):
            self._logger.log(Logger.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReaderInitCommon::46] Error Code 1: Serialization (Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.)")
            return None
        if built.split(".")[:2] != __version__.split(".")[:2]:
            self._logger.log(Logger.ERROR, "The engine plan file is not compatible with this version of TensorRT, expecting library version %s got %s, please rebuild." % (__version__, built))
            return None
        return ICudaEngine(plan)


class ICudaEngine:
    def __init__(self, plan):
        self._plan = plan
        self._tensors = {t["name"]: dict(t, mode=TensorIOMode.INPUT) for t in plan["inputs"]}
        self._tensors.update({t["name"]: dict(t, mode=TensorIOMode.OUTPUT) for t in plan["outputs"]})
        self._order = [t["name"] for t in plan["inputs"]] + [t["name"] for t in plan["outputs"]]

    @property
    def num_io_tensors(self):
        return len(self._order)

    def get_tensor_name(self, index):
        return self._order[index]

    def _t(self, name):
        if name not in self._tensors:
            raise ValueError("stand-in tensorrt: no tensor named %r" % name)
        return self._tensors[name]

    def get_tensor_mode(self, name):
        return self._t(name)["mode"]

    def get_tensor_dtype(self, name):
        return _BY_NAME[self._t(name)["dtype"]]

    def get_tensor_shape(self, name):
        t = self._t(name)
        return tuple(t.get("dims") or [-1] * len(t["min"]))

    def get_tensor_profile_shape(self, name, profile_index):
        t = self._t(name)
        if profile_index != 0 or t["mode"] != TensorIOMode.INPUT:
            raise ValueError("stand-in tensorrt: one profile, inputs only")
        return (tuple(t["min"]), tuple(t["opt"]), tuple(t["max"]))

    def create_execution_context(self):
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine):
        self._engine = engine
        self._shapes = {}
        self._addresses = {}

    def set_input_shape(self, name, shape):
        t = self._engine._t(name)
        if t["mode"] != TensorIOMode.INPUT:
            return False
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(t["min"]) or any(s < lo or s > hi for s, lo, hi in zip(shape, t["min"], t["max"])):
            return False  # outside the optimisation profile
        self._shapes[name] = shape
        return True

    def get_tensor_shape(self, name):
        t = self._engine._t(name)
        if t["mode"] == TensorIOMode.INPUT:
            return self._shapes.get(name, tuple(-1 for _ in t["min"]))
        batch = [s[0] for s in self._shapes.values()]
        if len(self._shapes) != len(self._engine._plan["inputs"]) or len(set(batch)) != 1:
            return tuple(-1 for _ in t["dims"])
        return (batch[0],) + tuple(t["dims"][1:])

    def set_tensor_address(self, name, memory):
        self._engine._t(name)
        if not isinstance(memory, int) or memory == 0:
            return False
        self._addresses[name] = memory
        return True

    def execute_async_v3(self, stream_handle):
        if type(stream_handle) is not int:  # the bindings take the handle as an int
            raise TypeError("execute_async_v3(): incompatible function arguments: stream_handle must be int, got %s" % type(stream_handle).__name__)
        plan = self._engine._plan
        inputs = []
        for t in plan["inputs"]:
            if t["name"] not in self._shapes or t["name"] not in self._addresses:
                return False
            shape = self._shapes[t["name"]]
            dt = np.dtype(_NP[_BY_NAME[t["dtype"]]])
            n = int(np.prod(shape)) * dt.itemsize
            raw = _cudart.device_bytes(self._addresses[t["name"]], n)
            inputs.append({"name": t["name"], "datatype": {"int32": "INT32", "int64": "INT64"}[t["dtype"]],
                           "shape": list(shape), "data": base64.b64encode(raw).decode()})
        outs = [t["name"] for t in plan["outputs"]]
        body = json.dumps({"onnx": plan["onnx"], "inputs": inputs, "outputs": outs}).encode()
        req = urllib.request.Request(os.environ["M3ECTL_STANDIN_EXEC_URL"], data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            reply = json.loads(r.read())
        if "error" in reply:
            return False
        for o in reply["outputs"]:
            if o["name"] not in self._addresses:
                return False
            _cudart.device_write(self._addresses[o["name"]], base64.b64decode(o["data"]))
        return True
