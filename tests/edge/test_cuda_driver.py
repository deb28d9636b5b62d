"""The ctypes signatures of the CUDA driver calls (edge/trt/driver.py) against the prototypes
in cuda.h: a wrong argument width would corrupt memory on a GPU, where no test here runs.
Needs cuda.h: $CUDA_INCLUDE, $CUDA_HOME/include, /usr/local/cuda/include, or the include folder
of the nvidia-cuda-runtime-cu12 wheel; skipped without one."""
import ctypes
import os
import re
from pathlib import Path

import pytest

from microexp.edge.trt.driver import _SIGNATURES


def find_cuda_h():
    folders = [os.environ.get("CUDA_INCLUDE"), os.environ.get("CUDA_HOME") and os.environ["CUDA_HOME"] + "/include",
               "/usr/local/cuda/include"]
    try:
        import nvidia.cuda_runtime
        folders.append(str(Path(nvidia.cuda_runtime.__path__[0]) / "include"))
    except ImportError:
        pass
    for folder in filter(None, folders):
        if (Path(folder) / "cuda.h").is_file():
            return Path(folder) / "cuda.h"
    return None


CUDA_H = find_cuda_h()

# Argument classes: what a C type and a ctypes type pass in a register.
HEADER_CLASS = {"CUdeviceptr": "u64", "size_t": "u64", "CUdevice": "i32", "int": "i32", "CUresult": "i32",
                "unsigned int": "u32", "unsigned char": "u8", "CUcontext": "ptr", "CUstream": "ptr"}
CTYPES_CLASS = {ctypes.c_uint64: "u64", ctypes.c_size_t: "u64", ctypes.c_int: "i32", ctypes.c_uint: "u32",
                ctypes.c_ubyte: "u8", ctypes.c_void_p: "ptr", ctypes.c_char_p: "ptr"}


def header_class(param: str) -> str:
    param = re.sub(r"\bconst\b", "", param).strip()
    if "*" in param:
        return "ptr"
    return HEADER_CLASS[" ".join(param.split()[:-1])]  # drop the parameter's name


def ctypes_class(t) -> str:
    return "ptr" if hasattr(t, "contents") or t.__name__.startswith("LP_") else CTYPES_CLASS[t]


@pytest.mark.skipif(CUDA_H is None, reason="no cuda.h here (set CUDA_INCLUDE to a CUDA include folder)")
def test_ctypes_signatures_match_cuda_h():
    text = CUDA_H.read_text(errors="replace")
    for name, argtypes in _SIGNATURES.items():
        base = name[:-3] if name.endswith("_v2") else name
        if base != name:  # cuda.h maps the plain name to the versioned symbol we bind
            assert re.search(rf"#define {base}\s+(__CUDA_API_PTSZ\()?{name}\b", text), name
        proto = re.search(rf"CUresult CUDAAPI {base}\(([^)]*)\);", text)  # the first: the current API
        assert proto, f"{base} not declared in {CUDA_H}"
        params = [p for p in proto.group(1).split(",") if p.strip() != "void"]
        assert [header_class(p) for p in params] == [ctypes_class(t) for t in argtypes], (name, proto.group(0))


def test_without_a_driver_the_gpu_name_says_why():
    from microexp.edge.trt import TensorRTUnavailable, tensorrt_present
    from microexp.edge.trt.build import gpu_name
    try:
        ctypes.CDLL("libcuda.so.1")
        pytest.skip("an NVIDIA driver is installed here")
    except OSError:
        pass
    assert not tensorrt_present()
    with pytest.raises(TensorRTUnavailable, match="no NVIDIA GPU visible .*libcuda.so.1"):
        gpu_name()
