# A strict stand-in for cuda-python's runtime bindings (cuda.bindings.runtime,
# cuda-python 12.8 and later), the part m3ectl's --layout python model.py
# uses: cudaSetDevice, cudaMalloc, cudaFree, cudaStreamCreate,
# cudaMemcpyAsync, cudaStreamSynchronize, each returning a tuple whose first
# element is a cudaError_t, as the real bindings do. "Device" memory is host
# memory the stand-in allocated; a copy must go between such memory and host
# memory in the direction its kind says, within the allocation, or it fails
# with cudaErrorInvalidValue.

import ctypes
import enum


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevice = 101


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


_allocs = {}  # pointer -> buffer
_streams = set()
_device = [None]


def _find(ptr, n):
    for base, buf in _allocs.items():
        if base <= ptr and ptr + n <= base + len(buf):
            return True
    return False


def cudaSetDevice(device):
    if not isinstance(device, int) or device < 0 or device > 7:
        return (cudaError_t.cudaErrorInvalidDevice,)
    _device[0] = device
    return (cudaError_t.cudaSuccess,)


def cudaMalloc(size):
    if _device[0] is None:
        raise RuntimeError("stand-in cuda: cudaMalloc before cudaSetDevice")
    if not isinstance(size, int) or size <= 0:
        return (cudaError_t.cudaErrorInvalidValue, 0)
    buf = ctypes.create_string_buffer(size)
    ptr = ctypes.addressof(buf)
    _allocs[ptr] = buf
    return (cudaError_t.cudaSuccess, ptr)


def cudaFree(ptr):
    if ptr not in _allocs:
        return (cudaError_t.cudaErrorInvalidValue,)
    del _allocs[ptr]
    return (cudaError_t.cudaSuccess,)


class cudaStream_t:
    """Like cuda-python's: an object, not an int; int() gives the handle."""

    def __init__(self, handle):
        self._handle = handle

    def __int__(self):
        return self._handle

    def getPtr(self):
        return self._handle


def _stream(s):
    h = int(s) if isinstance(s, (cudaStream_t, int)) else None
    return h if h in _streams else None


def cudaStreamCreate():
    s = len(_streams) + 1
    _streams.add(s)
    return (cudaError_t.cudaSuccess, cudaStream_t(s))


def cudaMemcpyAsync(dst, src, count, kind, stream):
    if _stream(stream) is None:
        return (cudaError_t.cudaErrorInvalidValue,)
    if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
        ok = _find(dst, count) and not _find(src, count)
    elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
        ok = _find(src, count) and not _find(dst, count)
    else:
        ok = False
    if not ok:
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(dst, src, count)
    return (cudaError_t.cudaSuccess,)


def cudaStreamSynchronize(stream):
    if _stream(stream) is None:
        return (cudaError_t.cudaErrorInvalidValue,)
    return (cudaError_t.cudaSuccess,)


def device_bytes(ptr, n):
    """For the stand-in tensorrt: n bytes of device memory at ptr."""
    if not _find(ptr, n):
        raise ValueError("not device memory")
    return ctypes.string_at(ptr, n)


def device_write(ptr, data):
    if not _find(ptr, len(data)):
        raise ValueError("not device memory")
    ctypes.memmove(ptr, data, len(data))
