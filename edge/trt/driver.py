"""The few CUDA driver calls a TensorRT engine needs from Python: device and page-locked host
memory, one stream, asynchronous copies. Called through ctypes on libcuda.so.1, which ships
with every NVIDIA driver (desktop and Jetson), so the native TensorRT backend needs neither
torch, pycuda nor cuda-python. TensorRT's own runtime calls share the device's primary context,
which is the one made current here."""
from __future__ import annotations

import ctypes
from typing import Tuple

import numpy as np


class CudaUnavailable(RuntimeError):
    pass


_c = ctypes
_PTR = _c.c_uint64  # CUdeviceptr
_SIGNATURES = {
    "cuInit": [_c.c_uint],
    "cuDeviceGet": [_c.POINTER(_c.c_int), _c.c_int],
    "cuDeviceGetName": [_c.c_char_p, _c.c_int, _c.c_int],
    "cuDevicePrimaryCtxRetain": [_c.POINTER(_c.c_void_p), _c.c_int],
    "cuCtxSetCurrent": [_c.c_void_p],
    "cuMemAlloc_v2": [_c.POINTER(_PTR), _c.c_size_t],
    "cuMemFree_v2": [_PTR],
    "cuMemHostAlloc": [_c.POINTER(_c.c_void_p), _c.c_size_t, _c.c_uint],
    "cuMemFreeHost": [_c.c_void_p],
    "cuMemcpyHtoDAsync_v2": [_PTR, _c.c_void_p, _c.c_size_t, _c.c_void_p],
    "cuMemcpyDtoHAsync_v2": [_c.c_void_p, _PTR, _c.c_size_t, _c.c_void_p],
    "cuMemcpyDtoDAsync_v2": [_PTR, _PTR, _c.c_size_t, _c.c_void_p],
    "cuMemsetD8Async": [_PTR, _c.c_ubyte, _c.c_size_t, _c.c_void_p],
    "cuStreamCreate": [_c.POINTER(_c.c_void_p), _c.c_uint],
    "cuStreamSynchronize": [_c.c_void_p],
    "cuGetErrorName": [_c.c_int, _c.POINTER(_c.c_char_p)],
}


class CudaDriver:
    """Device `device`'s primary context and one stream. Every call checks its CUresult and
    raises with the driver's error name; nothing here is per-frame allocation."""

    def __init__(self, device: int = 0, library: str = "libcuda.so.1"):
        try:
            lib = ctypes.CDLL(library)
        except OSError as err:
            raise CudaUnavailable(f"the native TensorRT backend needs an NVIDIA GPU and driver "
                                  f"({library} not found: {err})") from err
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        self._lib = lib
        self._call("cuInit", 0)
        dev = ctypes.c_int()
        self._call("cuDeviceGet", ctypes.byref(dev), device)
        name = ctypes.create_string_buffer(256)
        self._call("cuDeviceGetName", name, len(name), dev)
        self.device_name = name.value.decode(errors="replace")  # e.g. 'NVIDIA H100 80GB HBM3', 'Orin'
        self._context = ctypes.c_void_p()
        self._call("cuDevicePrimaryCtxRetain", ctypes.byref(self._context), dev)
        self.make_current()
        stream = ctypes.c_void_p()
        self._call("cuStreamCreate", ctypes.byref(stream), 0)
        self.stream = stream.value or 0  # the handle execute_async_v3 takes

    def _call(self, name: str, *args):
        result = getattr(self._lib, name)(*args)
        if result != 0:
            text = ctypes.c_char_p()
            self._lib.cuGetErrorName(result, ctypes.byref(text))
            raise RuntimeError(f"CUDA {name} failed: {(text.value or b'?').decode()} ({result})")

    def make_current(self):
        """Needed once per calling thread; cheap enough to do on every call."""
        self._call("cuCtxSetCurrent", self._context)

    def alloc(self, nbytes: int) -> int:
        ptr = _PTR()
        self._call("cuMemAlloc_v2", ctypes.byref(ptr), nbytes)
        return ptr.value

    def free(self, ptr: int):
        self._call("cuMemFree_v2", ptr)

    def host_array(self, shape: Tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A zeroed page-locked NumPy array (asynchronous copies need page-locked memory);
        release it with free_host(array)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = ctypes.c_void_p()
        self._call("cuMemHostAlloc", ctypes.byref(ptr), nbytes, 0)
        array = np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr.value), dtype).reshape(shape)
        array.fill(0)
        return array

    def free_host(self, array: np.ndarray):
        self._call("cuMemFreeHost", ctypes.c_void_p(array.ctypes.data))

    def to_device(self, dst: int, src: np.ndarray):
        self._call("cuMemcpyHtoDAsync_v2", dst, src.ctypes.data, src.nbytes, self.stream)

    def to_host(self, dst: np.ndarray, src: int):
        self._call("cuMemcpyDtoHAsync_v2", dst.ctypes.data, src, dst.nbytes, self.stream)

    def copy_device(self, dst: int, src: int, nbytes: int):
        self._call("cuMemcpyDtoDAsync_v2", dst, src, nbytes, self.stream)

    def zero(self, ptr: int, nbytes: int):
        self._call("cuMemsetD8Async", ptr, 0, nbytes, self.stream)

    def synchronize(self):
        self._call("cuStreamSynchronize", self.stream)
