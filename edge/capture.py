"""How GStreamer sources (a Jetson's csi:// camera, a pipeline string) are opened.

OpenCV opens them when it was built with GStreamer: JetPack's OpenCV is, pip's opencv wheels are
not. Without it, in this order: jetson-utils' videoSource (csi:// and other URIs it knows), then
GStreamer's own Python bindings (the pipeline ending in an appsink), else SourceUnavailable with
what to install. Each capture object reads like cv2.VideoCapture: isOpened(), read() -> (ok,
BGR image), get(), set(), release()."""
from __future__ import annotations

import importlib
from typing import List, Optional

import cv2
import numpy as np


class SourceUnavailable(OSError):
    """A source that exists (or is a device or stream URI) but cannot be opened."""


def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV was built with GStreamer (its build information says 'GStreamer: YES')."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def jetson_utils_module():
    """jetson-utils (JetPack's jetson-inference or dusty-nv/jetson-utils), or None."""
    for name in ("jetson_utils", "jetson.utils"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def gst_module():
    """GStreamer's Python bindings (python3-gi with gir1.2-gstreamer-1.0), initialised, or None."""
    try:
        gi = importlib.import_module("gi")
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst  # noqa: PLC0415 - optional, Jetson only
    except (ImportError, ValueError):
        return None
    Gst.init(None)
    return Gst


def backends() -> dict:
    """Which ways to open a GStreamer source this machine has (for `microexp cameras`)."""
    return {"opencv_gstreamer": opencv_has_gstreamer(), "jetson_utils": jetson_utils_module() is not None,
            "gstreamer_python": gst_module() is not None}


class JetsonUtilsCapture:
    """A camera or stream through jetson-utils' videoSource: RGB images in CUDA-mapped memory,
    copied out as BGR."""

    def __init__(self, module, uri: str, width: Optional[int], height: Optional[int], fps: Optional[float]):
        self._ju = module
        argv: List[str] = []
        if width:
            argv.append(f"--input-width={int(width)}")
        if height:
            argv.append(f"--input-height={int(height)}")
        if fps:
            argv.append(f"--input-rate={float(fps):g}")
        self._source = module.videoSource(uri, argv=argv)

    def isOpened(self) -> bool:
        return self._source is not None

    def read(self):
        image = self._source.Capture()
        if image is None:  # a timeout, or the stream ended
            return False, None
        if hasattr(self._ju, "cudaDeviceSynchronize"):
            self._ju.cudaDeviceSynchronize()
        rgb = np.asarray(self._ju.cudaToNumpy(image))
        if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
            raise SourceUnavailable(f"jetson-utils delivered {rgb.dtype} {rgb.shape} images; expected rgb8")
        return True, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGR)

    def get(self, prop) -> float:
        if prop == cv2.CAP_PROP_FPS and hasattr(self._source, "GetFrameRate"):
            return float(self._source.GetFrameRate())
        return 0.0

    def set(self, prop, value) -> bool:
        return False  # the mode is chosen when the source is opened

    def release(self) -> None:
        if self._source is not None:
            self._source.Close()
            self._source = None


class GstCapture:
    """A pipeline string run by GStreamer's Python bindings, frames pulled from its appsink
    (named microexp_sink; BGR, as the pipeline's caps must say)."""

    def __init__(self, gst, pipeline: str, timeout_s: float = 2.0):
        self._gst = gst
        text = pipeline.strip()
        if "appsink" not in text:
            text += " ! videoconvert ! video/x-raw,format=BGR ! appsink"
        # Our name on the (last) appsink, so the pipeline's frames can be pulled from it.
        head, _, tail = text.rpartition("appsink")
        self._pipeline = gst.parse_launch(f"{head}appsink name=microexp_sink{tail}")
        self._sink = self._pipeline.get_by_name("microexp_sink")
        self._timeout_ns = int(timeout_s * 1e9)
        self._opened = self._pipeline.set_state(gst.State.PLAYING) != gst.StateChangeReturn.FAILURE

    def isOpened(self) -> bool:
        return self._opened

    def read(self):
        sample = self._sink.emit("try-pull-sample", self._timeout_ns)
        if sample is None:
            return False, None
        structure = sample.get_caps().get_structure(0)
        width, height = structure.get_value("width"), structure.get_value("height")
        buffer = sample.get_buffer()
        ok, info = buffer.map(self._gst.MapFlags.READ)
        if not ok:
            return False, None
        try:
            data = np.frombuffer(info.data, np.uint8)
            if data.size < width * height * 3:
                raise SourceUnavailable(f"GStreamer delivered {data.size} bytes for a {width}x{height} frame; "
                                        "the pipeline must end in video/x-raw,format=BGR")
            return True, data[: width * height * 3].reshape(height, width, 3).copy()
        finally:
            buffer.unmap(info)

    def get(self, prop) -> float:
        return 0.0

    def set(self, prop, value) -> bool:
        return False

    def release(self) -> None:
        if self._pipeline is not None:
            self._pipeline.set_state(self._gst.State.NULL)
            self._pipeline = None


def open_gstreamer(pipeline: str, uri: Optional[str] = None, width: Optional[int] = None,
                   height: Optional[int] = None, fps: Optional[float] = None):
    """A capture for a GStreamer source: `pipeline` for OpenCV and GStreamer's bindings, `uri`
    (csi://N) for jetson-utils, which builds its own pipeline."""
    if opencv_has_gstreamer():
        return cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
    ju = jetson_utils_module() if uri else None
    if ju is not None:
        return JetsonUtilsCapture(ju, uri, width, height, fps)
    gst = gst_module()
    if gst is not None:
        return GstCapture(gst, pipeline)
    raise SourceUnavailable(
        f"source {uri or pipeline}: needs GStreamer, and this OpenCV ({cv2.__version__} at "
        f"{getattr(cv2, '__file__', '?')}) was built without it, as pip's opencv wheels are. On a Jetson: "
        "use JetPack's OpenCV (install microexp-edge without pip's OpenCV: docs/jetson.md in its source), or install "
        "jetson-utils (part of jetson-inference), or GStreamer's Python bindings "
        "(sudo apt install python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0). "
        "`microexp cameras` shows which of these this machine has")
