"""Typed facade over the native kernels (``microexp._kernels``).

Every function validates its inputs before touching memory and raises ``TypeError`` or
``ValueError`` naming the argument: scalars here (``kernels/arguments.py``), arrays in C++.
The GIL is released while the C++ code runs.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from microexp import _kernels
from microexp.kernels import arguments as arg

__all__ = [
    "match_template",
    "TemplateMatcher",
    "align_crop",
    "encode_hsv28",
    "encode_uvs28",
    "compose_regions",
    "region_motion",
    "region_flow",
    "resize_linear",
    "resize_area",
    "FarnebackFlow",
]

MATCH_MODES = ("exact", "pyramid")
NONFINITE = ("raise", "zero")
# Below this many multiply-adds the direct correlation beats the FFT round trip.
_DIRECT_LIMIT = 2_000_000


def _ccorr_fft(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Exact integer correlation sums sum(T * I) at every placement.

    float64 DFTs (OpenCV's, about 4x faster than NumPy's on this machine) of the 128-centred
    data, correlation by conjugate spectrum products summed over channels. The rounding error
    stays far below 0.5 (|error| ~ 1e-16 * log(n) * ||I|| * ||T||), so rounding recovers the
    exact integers; the largest distance to an integer is checked anyway, so a failure of that
    assumption raises instead of returning wrong sums. The centring terms are added back in
    integer arithmetic.
    """
    img_planes, tpl_planes = cv2.split(image), cv2.split(template)
    rows, cols = image.shape[:2]
    h, w = template.shape[:2]
    fh, fw = cv2.getOptimalDFTSize(rows), cv2.getOptimalDFTSize(cols)
    padded_img = np.zeros((fh, fw), np.float64)
    padded_tpl = np.zeros((fh, fw), np.float64)
    spectrum = None
    for img_k, tpl_k in zip(img_planes, tpl_planes):
        np.subtract(img_k, 128.0, out=padded_img[:rows, :cols])
        np.subtract(tpl_k, 128.0, out=padded_tpl[:h, :w])
        fi = cv2.dft(padded_img, nonzeroRows=rows)
        ft = cv2.dft(padded_tpl, nonzeroRows=h)
        product = cv2.mulSpectrums(fi, ft, 0, conjB=True)  # correlation, not convolution
        spectrum = product if spectrum is None else cv2.add(spectrum, product)
    full = cv2.dft(spectrum, flags=cv2.DFT_INVERSE | cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    oh, ow = rows - h + 1, cols - w + 1
    valid = full[:oh, :ow]
    rounded = np.rint(valid)
    worst = float(np.max(np.abs(valid - rounded)))
    if worst > 0.25:
        raise RuntimeError(f"match_template: FFT correlation drifted {worst:.3f} from integers "
                           f"for image {image.shape} and template {template.shape}")
    # sum(T*I) = sum((T-128)(I-128)) + 128*sum_window(I) + 128*sum(T) - 128^2 * n.
    # Window sums from the integral of the channel sum, in float64 (exact below 2^53).
    channel_sum = sum(p.astype(np.float64) for p in img_planes) if len(img_planes) > 1 \
        else img_planes[0]
    integral = cv2.integral(channel_sum, sdepth=cv2.CV_64F)
    window = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]
    template_sum = int(sum(cv2.sumElems(template)))
    n = h * w * len(tpl_planes)
    return (rounded.astype(np.int64) + 128 * window.astype(np.int64) + 128 * template_sum
            - 128 * 128 * n)


def _direct_cost(image: np.ndarray, template: np.ndarray) -> int:
    places = (image.shape[0] - template.shape[0] + 1) * (image.shape[1] - template.shape[1] + 1)
    return places * template.size


def ncc_map(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Full TM_CCOEFF_NORMED score map (float32): OpenCV's normalisation on exact sums."""
    _kernels.check_match_args(image, template)
    if _direct_cost(image, template) <= _DIRECT_LIMIT:
        ccorr = _kernels.ccorr_direct(image, template)
    else:
        ccorr = _ccorr_fft(image, template)
    return _kernels.ncc_map_from_ccorr(image, template, ccorr)


def _parabola_offset(left: float, mid: float, right: float) -> float:
    denom = left - 2.0 * mid + right
    if not denom < 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


def match_template(
    image: np.ndarray, template: np.ndarray, mode: str = "exact", subpixel: bool = False
) -> Tuple[Union[int, float], Union[int, float], float]:
    """Best placement of ``template`` in ``image`` by TM_CCOEFF_NORMED.

    Args:
        image: uint8 (rows, cols) or (rows, cols, channels) with 1-4 channels.
        template: uint8, same channels, not larger than ``image``.
        mode: ``"exact"`` (OpenCV's score definition evaluated on exact integer sums; the
            first maximum in raster order, as ``cv2.minMaxLoc``) or ``"pyramid"``
            (coarse-to-fine; the same scores at the placements it visits).
        subpixel: refine x and y by a parabola through the neighbouring scores and return
            them as floats.

    Returns:
        ``(x, y, score)``: top-left of the best placement and its score.
    """
    mode = arg.choice("match_template", "mode", mode, MATCH_MODES)
    subpixel = arg.flag("match_template", "subpixel", subpixel)
    if mode == "pyramid":
        x, y, score, sx, sy = _kernels.match_pyramid(image, template, subpixel)
        return (sx, sy, score) if subpixel else (x, y, score)
    scores = ncc_map(image, template)
    y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
    score = float(scores[y, x])
    if not subpixel:
        return int(x), int(y), score
    sx, sy = float(x), float(y)
    if 0 < x < scores.shape[1] - 1:
        sx += _parabola_offset(scores[y, x - 1], score, scores[y, x + 1])
    if 0 < y < scores.shape[0] - 1:
        sy += _parabola_offset(scores[y - 1, x], score, scores[y + 1, x])
    return sx, sy, score


class TemplateMatcher:
    """A fixed template prepared once for the pyramid search: its copy, halved levels and
    statistics are computed here instead of on every call. For tracking, where one template
    meets every frame; the results are ``match_template(image, template, mode="pyramid")``'s.

        matcher = TemplateMatcher(face)        # uint8 (rows, cols[, channels])
        x, y, score = matcher.match(region)
    """

    def __init__(self, template: np.ndarray, _loops: str = "best"):
        # _loops: "avx2" or "portable" force narrower row loops than the CPU allows (a test
        # hook: the tests compare them bit for bit).
        self._impl = _kernels.PyramidTemplate(template, loops=_loops)
        rows, cols, cn = self._impl.shape
        self.shape = (rows, cols) if np.ndim(template) == 2 else (rows, cols, cn)
        # A 1x1 stand-in with the template's layout, for check_match_args on frames.
        self._probe = np.zeros((1, 1) + self.shape[2:], np.uint8)

    def match(self, image: np.ndarray, subpixel: bool = False, finest_level: int = 0):
        """``(x, y, score)`` of the best placement in ``image``, as ``match_template``.

        ``finest_level`` > 0 stops the search at that pyramid level (1: half resolution)
        and returns the nearest full-resolution placement to its parabola-refined peak (the
        better of the two neighbours, scored at full resolution, when the peak lies near
        half-way), with that level's score: a faster tracking whose placement is within a
        pixel of ``match_template``'s, usually the same one."""
        fn = "TemplateMatcher.match"
        x, y, score, sx, sy = self._impl.match(image, arg.flag(fn, "subpixel", subpixel),
                                               arg.integer(fn, "finest_level", finest_level, 0, 4))
        return (sx, sy, score) if subpixel else (x, y, score)


def align_crop(
    frame: np.ndarray,
    template: Union[np.ndarray, TemplateMatcher],
    box: Sequence[float],
    margin: int = 40,
    size: Tuple[int, int] = (224, 224),
    mode: str = "exact",
    out: Optional[np.ndarray] = None,
    finest_level: int = 0,
) -> Tuple[np.ndarray, Tuple[int, int, int, int], float]:
    """Track the reference face by template matching and return the aligned crop.

    The seed's ``crop_with_template``: the search region is ``box`` grown by ``margin`` on each
    side and clipped to the frame; the crop is the template-sized window at the best match,
    resized to ``size`` = (width, height) like ``cv2.resize`` with INTER_LINEAR (within one
    grey level). ``out``, when given, receives the crop (uint8, C-contiguous, shape
    (height, width[, channels])) and is returned. ``template`` may be a ``TemplateMatcher``
    (``mode`` must then be ``"pyramid"``), which spares re-preparing it every frame.
    ``finest_level`` > 0 (a ``TemplateMatcher`` only) tracks at that pyramid level, see
    ``TemplateMatcher.match``.

    Returns:
        ``(crop, new_box, score)`` with ``new_box`` = (x1, y1, x2, y2) of the matched window.
    """
    fn = "align_crop"
    x1, y1, x2, y2 = arg.box(fn, "box", box)
    margin = arg.integer(fn, "margin", margin, 0, arg.INT_MAX // 4)
    width, height = arg.size(fn, "size", size)
    mode = arg.choice(fn, "mode", mode, MATCH_MODES)
    finest_level = arg.integer(fn, "finest_level", finest_level, 0, 4)
    matcher = template if isinstance(template, TemplateMatcher) else None
    if matcher is not None and mode != "pyramid":
        raise ValueError(f"align_crop: a TemplateMatcher searches in 'pyramid' mode, got mode={mode!r}")
    _kernels.check_match_args(frame, matcher._probe if matcher else template)  # dtype, layout, channels
    rows, cols = frame.shape[:2]
    rx1, ry1 = max(x1 - margin, 0), max(y1 - margin, 0)
    rx2, ry2 = min(x2 + margin, cols), min(y2 + margin, rows)
    th, tw = (matcher or template).shape[:2]
    if rx2 - rx1 < tw or ry2 - ry1 < th:
        raise ValueError(
            f"align_crop: the search region {(rx1, ry1, rx2, ry2)} (box {box!r} grown by "
            f"margin {margin}, clipped to the {cols}x{rows} frame) is smaller than the "
            f"{tw}x{th} template"
        )
    region = frame[ry1:ry2, rx1:rx2]
    if finest_level and matcher is None:
        raise ValueError("align_crop: finest_level > 0 needs a TemplateMatcher as 'template'")
    x, y, score = (matcher.match(region, finest_level=finest_level) if matcher
                   else match_template(region, template, mode=mode))
    cx, cy = rx1 + x, ry1 + y
    crop = _kernels.resize_linear(frame[cy : cy + th, cx : cx + tw], height, width, out)
    return crop, (cx, cy, cx + tw, cy + th), score


def resize_linear(src: np.ndarray, size: Tuple[int, int], out: Optional[np.ndarray] = None):
    """``cv2.resize(src, size, interpolation=INTER_LINEAR)`` for uint8 images (within 1 level)."""
    width, height = arg.size("resize_linear", "size", size)
    return _kernels.resize_linear(src, height, width, out)


def resize_area(src: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``cv2.resize(src, size, interpolation=INTER_AREA)`` for shrinking uint8 images, exactly."""
    width, height = arg.size("resize_area", "size", size)
    return _kernels.resize_area(src, height, width)


def encode_hsv28(
    flow: np.ndarray, out: Optional[np.ndarray] = None, nonfinite: str = "raise"
) -> np.ndarray:
    """The seed's HSV encoding of a flow field as a BGR uint8 (28, 28, 3) map.

    Bit-identical to cartToPolar (degrees) -> H = angle/2 truncated, S = 255,
    V = NORM_MINMAX magnitude truncated -> cvtColor(HSV2BGR) -> resize INTER_AREA to 28x28.

    Args:
        flow: float32 (rows, cols, 2), rows and cols >= 28.
        out: optional uint8 (28, 28, 3) C-contiguous buffer to write into.
        nonfinite: ``"raise"`` (ValueError if the flow has NaN/inf) or ``"zero"`` (such
            vectors count as zero motion).

    A flow with constant magnitude (all zero, or a pure translation) has min == max; OpenCV's
    normalisation then scales by 0, so V = 0 and the map is black.
    """
    return _kernels.encode_hsv28(flow, out, arg.choice("encode_hsv28", "nonfinite", nonfinite, NONFINITE))


def encode_uvs28(
    flow: np.ndarray,
    out: Optional[np.ndarray] = None,
    scale: float = 1.0,
    nonfinite: str = "raise",
) -> np.ndarray:
    """u, v and optical-strain magnitude as float32 (3, 28, 28).

    Each full-resolution map is min-max normalised to [0, scale] (a constant map becomes 0),
    then area-averaged to 28x28. Strain = sqrt(exx^2 + eyy^2 + 2 exy^2) with derivatives taken
    as ``numpy.gradient`` does. ``out`` may be ``batch[i]`` of an NCHW float32 buffer.
    """
    fn = "encode_uvs28"
    return _kernels.encode_uvs28(flow, out, arg.real(fn, "scale", scale, 1e-30, 1e30),
                                 arg.choice(fn, "nonfinite", nonfinite, NONFINITE))


def compose_regions(
    map28: np.ndarray, landmarks5: np.ndarray, out: Optional[np.ndarray] = None
) -> np.ndarray:
    """HTNet's four-region composite of a float32 (3, 28, 28) map.

    ``landmarks5``: (5, 2) points (x, y) in MTCNN order (left eye, right eye, nose, left mouth
    corner, right mouth corner) on the 28x28 grid. As the official HTNet code does, each
    centre is clamped to [7, 21] and truncated, its first coordinate indexes rows and its second
    columns, and the 14x14 crops of points 0, 1 (top) and 3, 4 (bottom) are tiled.
    """
    return _kernels.compose_regions(map28, landmarks5, out)


def region_motion(flow: np.ndarray, grid: int = 4, step: int = 4, nonfinite: str = "raise",
                  nonrigid_grid: Optional[int] = None) -> dict:
    """Motion scores of a (rows, cols, 2) float32 flow on every ``step``-th pixel: the mean flow
    magnitude (``motion``), its mean over the upper half (``motion_upper``) and the lower third
    (``motion_lower``) of the rows, and ``motion_local``, the largest mean magnitude over a
    ``grid`` x ``grid`` partition of the flow with its component-wise median removed; with
    ``nonrigid_grid``, also ``motion_nonrigid``: the largest mean magnitude over a
    ``nonrigid_grid`` x ``nonrigid_grid`` partition of the flow with its least-squares affine fit
    removed. In-plane head motion (translation, rotation, scale) is affine and leaves it; a facial
    action is not, and on small blocks even a weak one such as a lid tightening stands out.
    ``nonfinite``: ``"raise"`` or ``"zero"`` (NaN/inf vectors count as zero motion).
    One pass in C++ with per-thread scratch: no allocation per call after the first."""
    fn = "region_motion"
    nonrigid = 0 if nonrigid_grid is None else arg.integer(fn, "nonrigid_grid", nonrigid_grid, 1)
    motion, upper, lower, local, residual = _kernels.region_motion(
        flow, arg.integer(fn, "step", step, 1), arg.integer(fn, "grid", grid, 1), nonrigid,
        arg.choice(fn, "nonfinite", nonfinite, NONFINITE))
    out = {"motion": motion, "motion_upper": upper, "motion_lower": lower, "motion_local": local}
    if nonrigid_grid is not None:
        out["motion_nonrigid"] = residual
    return out


def region_flow(flow: np.ndarray, boxes: np.ndarray, out: Optional[np.ndarray] = None,
                nonfinite: str = "raise") -> np.ndarray:
    """Per-region statistics of a (rows, cols, 2) float32 flow, as a (regions, 4) float32 array:
    for each int32 box (x0, y0, x1, y1) of ``boxes`` (columns x0..x1-1, rows y0..y1-1, inside the
    flow and not empty), its mean u and mean v, then its main direction as MDMO defines it: the
    vectors are put in 8 direction bins of 45 degrees (counter-clockwise from +u; zero vectors in
    none), and the mean vector of the fullest bin (the lowest on a tie) is given as its magnitude
    and its angle (radians, ``atan2(v, u)``); 0 and 0 when every vector is zero. ``out``: a
    (regions, 4) float32 C-contiguous array to write into (no allocation per frame).
    ``nonfinite``: ``"raise"`` or ``"zero"`` (NaN/inf vectors count as zero vectors). Sums are
    kept in double; a result beyond float32's range is saturated at its largest value."""
    return _kernels.region_flow(flow, boxes, out, arg.choice("region_flow", "nonfinite", nonfinite, NONFINITE))


class FarnebackFlow:
    """Dense flow with the arithmetic of ``cv2.calcOpticalFlowFarneback`` (flags=0, box window).

    Same pyramid, polynomial expansion, border weights and update schedule as OpenCV, so the
    flow agrees with it to float rounding (tests bound the difference). Faster in a stream:
    the previous image's expansions are kept and reused while ``prev`` stays byte-identical
    (the runtime compares every frame with one onset frame), and no buffer is allocated per
    call once the size is known. One object per stream; calls on one object are serialised.

        flow = FarnebackFlow()(onset_gray, current_gray)   # (rows, cols, 2) float32
    """

    def __init__(self, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15, iterations: int = 3,
                 poly_n: int = 5, poly_sigma: float = 1.2, _portable: bool = False):
        fn = "FarnebackFlow"
        self.params = dict(pyr_scale=arg.real(fn, "pyr_scale", pyr_scale),
                           levels=arg.integer(fn, "levels", levels, 0, 10),
                           winsize=arg.integer(fn, "winsize", winsize, 1, 99),
                           iterations=arg.integer(fn, "iterations", iterations, 1, 100),
                           poly_n=arg.integer(fn, "poly_n", poly_n, 1, 15),
                           poly_sigma=arg.real(fn, "poly_sigma", poly_sigma, 0.0))
        # _portable: use the portable row loops even where AVX2 is present (a test hook).
        self._impl = _kernels.Farneback(*self.params.values(), portable=arg.flag(fn, "_portable", _portable))

    def __call__(self, prev: np.ndarray, next: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._impl.calc(prev, next, out)

    @property
    def reference_reuses(self) -> int:
        """How many calls found ``prev`` unchanged and reused its expansions."""
        return self._impl.reference_reuses

    def __repr__(self):
        return "FarnebackFlow(" + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ")"
