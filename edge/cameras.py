"""The capture devices of this machine and their modes: V4L2 devices (/dev/video*: USB cameras,
and a Jetson's CSI cameras as the kernel exposes them) with each pixel format's frame sizes and
rates, read with the kernel's V4L2 enumeration ioctls (no OpenCV, no v4l2-ctl needed)."""
from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional

_u32 = ctypes.c_uint32


class _Capability(ctypes.Structure):
    _fields_ = [("driver", ctypes.c_char * 16), ("card", ctypes.c_char * 32), ("bus_info", ctypes.c_char * 32),
                ("version", _u32), ("capabilities", _u32), ("device_caps", _u32), ("reserved", _u32 * 3)]


class _FormatDesc(ctypes.Structure):
    _fields_ = [("index", _u32), ("type", _u32), ("flags", _u32), ("description", ctypes.c_char * 32),
                ("pixelformat", _u32), ("mbus_code", _u32), ("reserved", _u32 * 3)]


class _SizeStepwise(ctypes.Structure):
    _fields_ = [("min_width", _u32), ("max_width", _u32), ("step_width", _u32),
                ("min_height", _u32), ("max_height", _u32), ("step_height", _u32)]


class _SizeDiscrete(ctypes.Structure):
    _fields_ = [("width", _u32), ("height", _u32)]


class _SizeUnion(ctypes.Union):
    _fields_ = [("discrete", _SizeDiscrete), ("stepwise", _SizeStepwise)]


class _FrameSize(ctypes.Structure):
    _fields_ = [("index", _u32), ("pixel_format", _u32), ("type", _u32), ("size", _SizeUnion),
                ("reserved", _u32 * 2)]


class _Fraction(ctypes.Structure):
    _fields_ = [("numerator", _u32), ("denominator", _u32)]


class _IntervalStepwise(ctypes.Structure):
    _fields_ = [("min", _Fraction), ("max", _Fraction), ("step", _Fraction)]


class _IntervalUnion(ctypes.Union):
    _fields_ = [("discrete", _Fraction), ("stepwise", _IntervalStepwise)]


class _FrameInterval(ctypes.Structure):
    _fields_ = [("index", _u32), ("pixel_format", _u32), ("width", _u32), ("height", _u32), ("type", _u32),
                ("interval", _IntervalUnion), ("reserved", _u32 * 2)]


def _iowr(number: int, struct, read_only: bool = False) -> int:
    direction = 2 if read_only else 3  # _IOR / _IOWR
    return (direction << 30) | (ctypes.sizeof(struct) << 16) | (ord("V") << 8) | number


VIDIOC_QUERYCAP = _iowr(0, _Capability, read_only=True)
VIDIOC_ENUM_FMT = _iowr(2, _FormatDesc)
VIDIOC_ENUM_FRAMESIZES = _iowr(74, _FrameSize)
VIDIOC_ENUM_FRAMEINTERVALS = _iowr(75, _FrameInterval)
CAPTURE = 1  # V4L2_BUF_TYPE_VIDEO_CAPTURE, V4L2_CAP_VIDEO_CAPTURE
DEVICE_CAPS = 0x80000000  # V4L2_CAP_DEVICE_CAPS: device_caps is valid
DISCRETE = 1  # V4L2_FRMSIZE_TYPE_DISCRETE, V4L2_FRMIVAL_TYPE_DISCRETE


@dataclass
class Mode:
    width: int
    height: int
    rates: List[float] = field(default_factory=list)  # frames per second; empty: not listed

    def __str__(self):
        rates = "/".join(f"{r:g}" for r in self.rates) or "?"
        return f"{self.width}x{self.height}@{rates}"


@dataclass
class Camera:
    path: str
    name: str
    driver: str
    formats: dict = field(default_factory=dict)  # fourcc -> [Mode]

    def uri(self) -> str:
        return f"v4l2://{self.path}"


def _fourcc(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))


def _enumerate(fd: int, ioctl: Callable, request: int, struct) -> list:
    """Every answer of an enumeration ioctl, index 0, 1, ... until EINVAL."""
    out = []
    for index in range(256):  # a bound against a driver that never says stop
        struct.index = index
        try:
            ioctl(fd, request, struct)
        except OSError as err:
            if err.errno == errno.EINVAL:
                break
            raise
        out.append(type(struct).from_buffer_copy(struct))
    return out


def _rates(fd, ioctl, fourcc: int, width: int, height: int) -> List[float]:
    query = _FrameInterval(pixel_format=fourcc, width=width, height=height)
    rates = []
    for answer in _enumerate(fd, ioctl, VIDIOC_ENUM_FRAMEINTERVALS, query):
        if answer.type == DISCRETE and answer.interval.discrete.numerator:
            rates.append(round(answer.interval.discrete.denominator / answer.interval.discrete.numerator, 3))
        elif answer.type != DISCRETE and answer.interval.stepwise.min.numerator:  # continuous or stepwise
            fastest = answer.interval.stepwise.min
            rates.append(round(fastest.denominator / fastest.numerator, 3))
    return rates


def describe(path: str, ioctl: Callable = fcntl.ioctl, opener: Callable = os.open) -> Optional[Camera]:
    """A V4L2 capture device's name and modes; None when `path` is not one (a metadata node)."""
    fd = opener(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        cap = _Capability()
        ioctl(fd, VIDIOC_QUERYCAP, cap)
        caps = cap.device_caps if cap.capabilities & DEVICE_CAPS else cap.capabilities
        if not caps & CAPTURE:
            return None
        camera = Camera(path, cap.card.decode(errors="replace"), cap.driver.decode(errors="replace"))
        for fmt in _enumerate(fd, ioctl, VIDIOC_ENUM_FMT, _FormatDesc(type=CAPTURE)):
            modes = []
            for size in _enumerate(fd, ioctl, VIDIOC_ENUM_FRAMESIZES, _FrameSize(pixel_format=fmt.pixelformat)):
                if size.type == DISCRETE:
                    w, h = size.size.discrete.width, size.size.discrete.height
                else:  # a range: its largest size stands for it
                    w, h = size.size.stepwise.max_width, size.size.stepwise.max_height
                modes.append(Mode(w, h, _rates(fd, ioctl, fmt.pixelformat, w, h)))
            camera.formats[_fourcc(fmt.pixelformat)] = modes
        return camera
    finally:
        os.close(fd) if opener is os.open else None


def list_cameras(pattern: str = "/dev/video*") -> List[Camera]:
    """The V4L2 capture devices that can be opened now (others are skipped: busy, no access)."""
    found = []
    for path in sorted(glob.glob(pattern), key=lambda p: (len(p), p)):
        try:
            camera = describe(path)
        except OSError:
            continue
        if camera is not None:
            found.append(camera)
    return found
