"""Random calls into every native kernel, through the facade (``microexp.kernels``) and the raw
extension (``microexp._kernels``), with random dtypes, shapes, strides, alignment, byte order,
pickled arrays, extreme and non-finite values and keyword values.

Every case is a pure function of (seed, index): ``--replay SEED:INDEX`` runs one again and
prints it. A case passes when the call returns (with finite outputs wherever every input was
finite) or raises TypeError/ValueError; anything else is a finding: another exception type, a
non-finite output for finite input, or, seen by the driver, a crash (a sanitizer report, a
signal) or a hang. The driver runs chunks of cases in child processes, so a crash costs one
chunk, which is then replayed case by case to name the index.

    python -m tests.kernels.fuzz --cases 10000000 --workers 2 --json fuzz.json   # a release
    python -m tests.kernels.fuzz --replay 1:4711                                 # one case
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from microexp import _kernels as R
from microexp import kernels as K

FLOAT_DTYPES = [np.float16, np.float32, np.float64]
OTHER_DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.bool_, np.complex64]
NOT_ARRAYS = [None, [[1, 2], [3, 4]], 3.0, "image", np.float32(1.0), b"\x00" * 16]
# Scalar argument values that have broken parsers before: limits of C int, of float, NumPy
# scalars with wrapping arithmetic, non-numbers.
ODD_INTS = [0, -1, 1, 2, 3, 5, 31, 2**31 - 1, 2**31, -(2**31) - 1, 2**63, 10**400, 1.5, 2.0, math.inf,
            -math.inf, math.nan, np.uint8(3), np.int64(2), np.float32(2.0), True, None, "3", [2]]
ODD_FLOATS = [0.0, -0.0, -1.0, 1e-300, 1e-45, 5e-324, 1e30, 1e39, 1e300, 10**400, math.inf, -math.inf,
              math.nan, np.float32(0.5), np.float64(2.0), np.uint8(1), None, "1.0"]


@dataclass
class Case:
    function: str
    call: Callable
    gen: "Gen"  # its finite flag is read after the call: some arguments are drawn inside it

    @property
    def notes(self) -> List[str]:
        return self.gen.notes


class Gen:
    """Random arguments from one case's generator."""

    def __init__(self, rng: np.random.Generator, plain: bool = False):
        self.rng = rng
        self.plain = plain  # every array C-contiguous, aligned and native (same random draws)
        self.finite = True
        self.notes: List[str] = []
        self.role = ""  # "out " while drawing an output buffer

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def side(self, lo: int, typical_hi: int) -> int:
        if self.p(0.05):
            return int(self.pick([0, 1, 2, 3]))
        if self.p(0.05):
            return int(self.rng.integers(typical_hi, 4 * typical_hi + 1))
        return int(self.rng.integers(lo, typical_hi + 1))

    def integer(self, typical: List[int]):
        return self.pick(ODD_INTS) if self.p(0.12) else int(self.pick(typical))

    def real(self, typical: List[float]):
        return self.pick(ODD_FLOATS) if self.p(0.12) else float(self.pick(typical))

    def text(self, options: List[str]):
        return self.pick([None, "", "RAISE", 3, "zero "]) if self.p(0.05) else self.pick(options)

    # ----- arrays ---------------------------------------------------------------------------

    def values(self, dtype, shape):
        rng = self.rng
        size = int(np.prod(shape)) if len(shape) else 1
        if np.dtype(dtype).kind == "f":
            mode = int(rng.integers(8))
            with np.errstate(all="ignore"):
                if mode == 0:
                    a = np.zeros(shape)
                elif mode == 1:
                    a = np.full(shape, rng.normal() * 10.0 ** rng.uniform(-40, 38))
                elif mode == 2:
                    a = rng.uniform(-3.4e38, 3.4e38, size).reshape(shape)
                elif mode == 3:
                    a = rng.normal(size=size).reshape(shape) * 10.0 ** rng.uniform(-45, 38, size).reshape(shape)
                else:
                    a = rng.normal(0, 3, size).reshape(shape)
                a = a.astype(dtype)
                if self.p(0.15) and size:
                    bad = rng.integers(0, size, max(1, size // 50))
                    a.reshape(-1)[bad] = rng.choice([np.nan, np.inf, -np.inf], len(bad))
                if not np.isfinite(a).all():
                    self.finite = False
            return a
        if np.dtype(dtype).kind == "c":
            return (rng.normal(size=size) + 0j).reshape(shape).astype(dtype)
        if self.p(0.2):
            return np.full(shape, int(rng.integers(0, 256)), np.uint8).astype(dtype)
        return rng.integers(0, 256, size, dtype=np.uint8).reshape(shape).astype(dtype)

    def laid_out(self, a: np.ndarray) -> np.ndarray:
        """The same values in one of the layouts callers produce."""
        kind = int(self.rng.integers(18))
        if not isinstance(a, np.ndarray) or kind <= 10 or a.ndim == 0 or a.size == 0 or self.plain:
            return a
        kind -= 6
        if kind == 5 and a.ndim >= 2:  # a crop of a wider frame: padded rows
            wide = np.zeros((a.shape[0], a.shape[1] + 3) + a.shape[2:], a.dtype)
            wide[:, : a.shape[1]] = a
            self.notes.append(self.role + "padded rows")
            return wide[:, : a.shape[1]]
        if kind == 6:  # misaligned: np.frombuffer at an odd byte offset
            buf = bytearray(a.nbytes + 1)
            view = np.frombuffer(buf, a.dtype, count=a.size, offset=1).reshape(a.shape)
            view[...] = a
            self.notes.append(self.role + "misaligned")
            return view
        if kind == 7:
            self.notes.append(self.role + "pickled")
            return pickle.loads(pickle.dumps(a))
        if kind == 8:
            self.notes.append(self.role + "byte-swapped")
            return a.astype(a.dtype.newbyteorder())
        if kind == 9:
            self.notes.append(self.role + "read-only")
            a = a.copy()
            a.flags.writeable = False
            return a
        if kind == 10:
            self.notes.append(self.role + "Fortran order")
            return np.asfortranarray(a)
        self.notes.append(self.role + "reversed rows")
        return a[::-1]

    def array(self, dtype, shape, layout: bool = True):
        if self.p(0.02):
            self.notes.append("not an array")
            return self.pick(NOT_ARRAYS)
        if self.p(0.08):
            dtype = self.pick(FLOAT_DTYPES + OTHER_DTYPES)
            self.notes.append(f"dtype {np.dtype(dtype).name}")
        if self.p(0.06):
            shape = self.mutated(shape)
        a = self.values(dtype, shape)
        return self.laid_out(a) if layout else a

    def mutated(self, shape):
        shape = list(shape)
        kind = int(self.rng.integers(4))
        if kind == 0 and shape:
            shape.pop()
        elif kind == 1:
            shape.append(int(self.pick([1, 2, 3])))
        elif kind == 2 and shape:
            shape[int(self.rng.integers(len(shape)))] = 0
        elif shape:
            shape[-1] = int(self.pick([1, 2, 3, 4, 5]))
        self.notes.append(f"shape {tuple(shape)}")
        return tuple(shape)

    def out(self, dtype, shape):
        """None (allocate) or a caller's buffer, sometimes of the wrong kind."""
        if self.p(0.5):
            return None
        self.role = "out "
        try:
            return self.array(dtype, shape)
        finally:
            self.role = ""

    # ----- domain objects ---------------------------------------------------------------------

    def image(self, cn: Optional[int] = None, lo: int = 1, hi: int = 90):
        cn = cn if cn is not None else int(self.pick([1, 1, 3, 3, 4, 2]))
        shape = (self.side(lo, hi), self.side(lo, hi)) + (() if cn == 1 and self.p(0.5) else (cn,))
        return self.array(np.uint8, shape)

    def template_of(self, image, lo: int = 1):
        if not isinstance(image, np.ndarray) or image.ndim < 2 or min(image.shape[:2]) < 1 or self.p(0.1):
            return self.image()
        rows, cols = image.shape[:2]
        h = int(self.rng.integers(max(1, min(lo, rows)), rows + 1))
        w = int(self.rng.integers(max(1, min(lo, cols)), cols + 1))
        y, x = int(self.rng.integers(0, rows - h + 1)), int(self.rng.integers(0, cols - w + 1))
        if image.dtype == np.uint8 and image.ndim in (2, 3):
            return self.laid_out(np.ascontiguousarray(image[y : y + h, x : x + w]))
        return self.array(np.uint8, (h, w) + image.shape[2:])

    def flow(self, lo: int = 20, hi: int = 64):
        return self.array(np.float32, (self.side(lo, hi), self.side(lo, hi), 2))


# ----- the functions and their argument generators ---------------------------------------------

def _matcher(g: Gen, template):
    return K.TemplateMatcher(template, _loops=g.pick(["best", "best", "portable", "avx2"]))


def case_match_template(g):
    image = g.image()
    tpl = g.template_of(image)
    return lambda: K.match_template(image, tpl, mode=g.text(["exact", "pyramid"]),
                                    subpixel=g.pick([False, True, 0, 1, np.bool_(True), "yes"] if g.p(0.1) else [False, True]))


def case_ncc_map(g):
    image = g.image()
    tpl = g.template_of(image)
    return lambda: K.ncc_map(image, tpl)


def case_template_matcher(g):
    image = g.image(hi=120)
    tpl = g.template_of(image, lo=8)
    level = g.integer([0, 0, 1, 2, 3, 4])
    return lambda: _matcher(g, tpl).match(image, subpixel=g.pick([False, True]), finest_level=level)


def case_align_crop(g):
    frame = g.image(hi=120)
    tpl = g.template_of(frame, lo=4)
    rows, cols = (frame.shape[:2] if isinstance(frame, np.ndarray) and frame.ndim >= 2 else (50, 50))
    x1, y1 = g.rng.uniform(-20, cols), g.rng.uniform(-20, rows)
    box = [x1, y1, x1 + g.rng.uniform(1, 60), y1 + g.rng.uniform(1, 60)]
    if g.p(0.1):
        box[int(g.rng.integers(4))] = g.pick(ODD_FLOATS)
    if g.p(0.03):
        box = g.pick([(1, 2), "box", None, (1, 2, 3, 4, 5)])
    size = (g.integer([1, 16, 28, 64, 224]), g.integer([1, 16, 28, 64, 224]))
    if g.p(0.03):
        size = g.pick([224, (1,), None, "224x224"])
    use_matcher = g.p(0.4)
    mode = "pyramid" if use_matcher and g.p(0.9) else g.text(["exact", "pyramid"])
    level = g.integer([0, 0, 1, 2]) if use_matcher else g.integer([0, 0, 0, 1])
    cn = tpl.shape[2:] if isinstance(tpl, np.ndarray) else ()
    out = g.out(np.uint8, (size[1], size[0]) + cn) if _plain_size(size) else None

    def call():
        template = _matcher(g, tpl) if use_matcher else tpl
        return K.align_crop(frame, template, box, margin=g.integer([0, 4, 40]), size=size, mode=mode,
                            out=out, finest_level=level)
    return call


def _plain_size(size) -> bool:
    """A (width, height) small enough for the fuzzer to allocate an output buffer for."""
    return isinstance(size, tuple) and len(size) == 2 and all(
        type(v) is int and 0 < v < 4096 for v in size)


def _size_pair(g, src):
    rows, cols = (src.shape[:2] if isinstance(src, np.ndarray) and src.ndim >= 2 else (8, 8))
    if g.p(0.05):
        return g.pick([(70000, 2), (65536, 65536), (40000, 40000), (1, 0), 5, None])
    return (g.integer([1, max(1, cols // 2), cols, 2 * cols + 1, 224]),
            g.integer([1, max(1, rows // 2), rows, 2 * rows + 1, 224]))


def case_resize_linear(g):
    src = g.image(hi=80)
    size = _size_pair(g, src)
    cn = src.shape[2:] if isinstance(src, np.ndarray) else ()
    out = g.out(np.uint8, (size[1], size[0]) + cn) if _plain_size(size) else None
    return lambda: K.resize_linear(src, size, out)


def case_resize_area(g):
    src = g.image(hi=80)
    size = _size_pair(g, src)
    return lambda: K.resize_area(src, size)


def case_encode_hsv28(g):
    flow = g.flow()
    out = g.out(np.uint8, (28, 28, 3))
    return lambda: K.encode_hsv28(flow, out=out, nonfinite=g.text(["raise", "zero"]))


def case_encode_uvs28(g):
    flow = g.flow()
    out = g.out(np.float32, (3, 28, 28))
    return lambda: K.encode_uvs28(flow, out=out, scale=g.real([1.0, 255.0, 0.5]),
                                  nonfinite=g.text(["raise", "zero"]))


def case_compose_regions(g):
    map28 = g.array(np.float32, (3, 28, 28))
    pts = g.rng.uniform(-5, 35, (5, 2))
    if g.p(0.1):
        pts[int(g.rng.integers(5)), int(g.rng.integers(2))] = g.pick([np.nan, np.inf, 1e300, -1e300])
    landmarks = g.laid_out(pts) if g.p(0.9) else g.pick([None, "eyes", pts[:4], pts.astype(np.float32)])
    out = g.out(np.float32, (3, 28, 28))
    return lambda: K.compose_regions(map28, landmarks, out)


def case_region_motion(g):
    flow = g.flow(lo=1, hi=64)
    nonrigid = None if g.p(0.3) else g.integer([1, 2, 4, 8])
    return lambda: K.region_motion(flow, grid=g.integer([1, 2, 4]), step=g.integer([1, 2, 4, 8]),
                                   nonfinite=g.text(["raise", "zero"]), nonrigid_grid=nonrigid)


def _boxes(g, rows, cols):
    """Boxes inside a rows x cols flow, now and then one that is not (outside, empty, reversed)."""
    boxes = []
    for _ in range(int(g.pick([1, 3, 12]))):  # how many: drawn plainly (g.integer draws odd values too)
        x0, y0 = int(g.rng.integers(0, max(1, cols))), int(g.rng.integers(0, max(1, rows)))
        box = [x0, y0, x0 + int(g.rng.integers(1, 9)), y0 + int(g.rng.integers(1, 9))]
        box[2], box[3] = min(box[2], cols), min(box[3], rows)
        if g.p(0.05):
            box[int(g.rng.integers(4))] = int(g.pick([-1, 0, rows + 1, cols + 1, 2**31 - 1, -2**31]))
        boxes.append(box)
    return np.array(boxes, g.pick([np.int32] * 9 + [np.int64]))


def case_region_flow(g):
    flow = g.flow(lo=1, hi=64)
    rows, cols = flow.shape[:2] if isinstance(flow, np.ndarray) and flow.ndim == 3 else (8, 8)
    boxes = _boxes(g, int(rows), int(cols))
    out = g.out(np.float32, (len(boxes), 4))
    return lambda: K.region_flow(flow, boxes, out=out, nonfinite=g.text(["raise", "zero"]))


def _farneback_params(g):
    return dict(pyr_scale=g.real([0.5, 0.5, 0.8, 0.25]), levels=g.integer([0, 1, 3]),
                winsize=g.integer([1, 5, 15]), iterations=g.integer([1, 3]),
                poly_n=g.integer([5, 7, 1, 3]),
                poly_sigma=g.real([1.1, 1.2, 1.5, 0.0, 0.05, 0.2, 0.5] if g.p(0.5) else [1.1, 1.5]))


def case_farneback(g):
    rows, cols = g.side(10, 70), g.side(10, 70)
    prev = g.array(np.uint8, (rows, cols))
    nxt = g.array(np.uint8, (rows, cols)) if g.p(0.9) else g.image(cn=1)
    params = _farneback_params(g)
    out = g.out(np.float32, (rows, cols, 2))
    return lambda: K.FarnebackFlow(**params, _portable=g.pick([False, True]))(prev, nxt, out)


# The raw extension: the same kernels without the facade's parsing in front.

def case_raw_check_match_args(g):
    image = g.image()
    return lambda: R.check_match_args(image, g.template_of(image))


def case_raw_ccorr_direct(g):
    image = g.image(hi=60)
    return lambda: R.ccorr_direct(image, g.template_of(image))


def case_raw_ncc_map_from_ccorr(g):
    image = g.image(hi=60)
    tpl = g.template_of(image)
    if g.p(0.7) and isinstance(image, np.ndarray) and isinstance(tpl, np.ndarray) and image.dtype == np.uint8 \
            and tpl.dtype == np.uint8 and image.ndim == tpl.ndim and image.ndim in (2, 3) \
            and image.shape[2:] == tpl.shape[2:] and all(t <= i for t, i in zip(tpl.shape[:2], image.shape[:2])) \
            and min(tpl.shape[:2]) > 0:
        try:
            ccorr = R.ccorr_direct(np.ascontiguousarray(image), np.ascontiguousarray(tpl))
        except (TypeError, ValueError):
            ccorr = g.array(np.int64, (3, 3))
        if g.p(0.2) and isinstance(ccorr, np.ndarray):
            ccorr = g.rng.integers(-2**62, 2**62, ccorr.shape, dtype=np.int64)
            g.notes.append("random ccorr")
        ccorr = g.laid_out(ccorr)
    else:
        ccorr = g.array(np.int64, (g.side(1, 20), g.side(1, 20)))
    return lambda: R.ncc_map_from_ccorr(image, tpl, ccorr)


def case_raw_match_pyramid(g):
    image = g.image(hi=120)
    return lambda: R.match_pyramid(image, g.template_of(image), g.pick([False, True]))


def case_raw_resize_linear(g):
    src = g.image(hi=80)
    size = _size_pair(g, src) if g.p(0.95) else (2**40, 3)
    width, height = size if isinstance(size, tuple) and len(size) == 2 else (size, size)
    return lambda: R.resize_linear(src, height, width, None)


def case_raw_resize_area(g):
    src = g.image(hi=80)
    size = _size_pair(g, src)
    return lambda: R.resize_area(src, *(size[::-1] if isinstance(size, tuple) else (size, size)))


def case_raw_encode_hsv28(g):
    return lambda: R.encode_hsv28(g.flow(), g.out(np.uint8, (28, 28, 3)), g.text(["raise", "zero"]))


def case_raw_encode_uvs28(g):
    return lambda: R.encode_uvs28(g.flow(), g.out(np.float32, (3, 28, 28)), g.real([1.0, 255.0]),
                                  g.text(["raise", "zero"]))


def case_raw_compose_regions(g):
    return lambda: R.compose_regions(g.array(np.float32, (3, 28, 28)), g.array(np.float64, (5, 2)) * 30,
                                     g.out(np.float32, (3, 28, 28)))


def case_raw_region_motion(g):
    return lambda: R.region_motion(g.flow(lo=1), g.integer([1, 4, 2**31 - 1]), g.integer([1, 4]),
                                   g.integer([0, 4, 8]), g.text(["raise", "zero"]))


def case_raw_region_flow(g):
    flow = g.flow(lo=1)
    rows, cols = flow.shape[:2] if isinstance(flow, np.ndarray) and flow.ndim == 3 else (8, 8)
    return lambda: R.region_flow(flow, _boxes(g, int(rows), int(cols)), g.out(np.float32, (3, 4)),
                                 g.text(["raise", "zero"]))


def case_raw_pyramid_template(g):
    image = g.image(hi=120)
    tpl = g.template_of(image, lo=8)

    def call():
        t = R.PyramidTemplate(tpl, g.text(["best", "portable", "avx2"]))
        t.level(g.integer([0, 1, t.depth, t.depth + 1, -1]))
        return t.match(image, g.pick([False, True]), g.integer([0, 1, 2, 4, 5]))
    return call


def case_raw_farneback(g):
    rows, cols = g.side(10, 60), g.side(10, 60)
    prev, nxt = g.array(np.uint8, (rows, cols)), g.array(np.uint8, (rows, cols))
    params = _farneback_params(g)
    return lambda: R.Farneback(*params.values(), g.pick([False, True])).calc(prev, nxt, g.out(np.float32, (rows, cols, 2)))


def case_raw_hsv_to_bgr(g):
    rows, cols = g.side(1, 40), g.side(1, 40)
    hue = g.array(np.uint8, (rows, cols))
    if isinstance(hue, np.ndarray) and hue.dtype == np.uint8 and g.p(0.8):
        hue = hue % 181  # mostly valid hues (OpenCV's 0..180)
    return lambda: R._hsv_to_bgr(hue, g.array(np.uint8, (rows, cols)))


CASES: Dict[str, Callable[[Gen], Callable]] = {
    name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")
}


def make_case(seed: int, index: int, plain: bool = False) -> Case:
    rng = np.random.default_rng([seed, index])
    names = list(CASES)
    name = names[index % len(names)]
    g = Gen(rng, plain)
    with np.errstate(all="ignore"):  # extreme values are the point: casting them may overflow
        return Case(name, CASES[name](g), g)


# Input layouts that must not change a result: the same values, only stored differently.
# (Padded rows are not among them: some inputs must be wholly C-contiguous.)
EQUIVALENT_LAYOUTS = {"misaligned", "pickled", "byte-swapped", "read-only"}


# ----- checking -------------------------------------------------------------------------------

def _nonfinite_outputs(result) -> bool:
    if isinstance(result, dict):
        return any(_nonfinite_outputs(v) for v in result.values())
    if isinstance(result, (tuple, list)):
        return any(_nonfinite_outputs(v) for v in result)
    if isinstance(result, np.ndarray):
        return result.dtype.kind == "f" and not bool(np.isfinite(result).all())
    if isinstance(result, float):
        return not math.isfinite(result)
    return False


def run_case(seed: int, index: int, outcomes: Optional[Counter] = None) -> Optional[dict]:
    """None when the case passes, else a finding. ``outcomes`` counts returned/refused calls."""
    outcomes = outcomes if outcomes is not None else Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                case = make_case(seed, index)
            except Exception as e:  # noqa: BLE001 - a bug of this harness, reported as one
                return {"seed": seed, "index": index, "function": "?", "kind": "fuzz harness error",
                        "detail": f"{type(e).__name__}: {e}"[:300], "notes": []}
            try:
                result = case.call()
            except (TypeError, ValueError) as e:
                outcomes["refused"] += 1
                if not str(e):
                    return _finding(seed, index, case, "empty error message", repr(e))
                return None
            except MemoryError as e:
                return _finding(seed, index, case, "MemoryError (no size limit hit first)", str(e)[:300])
            except Exception as e:  # noqa: BLE001 - every other type is the finding
                return _finding(seed, index, case, f"wrong exception type {type(e).__name__}", str(e)[:300])
    outcomes["returned"] += 1
    if case.gen.finite and _nonfinite_outputs(result):
        return _finding(seed, index, case, "non-finite output for finite input", "")
    return None


def _outcome(call):
    try:
        return "returned", call()
    except (TypeError, ValueError) as e:
        return "refused", str(e)
    except Exception as e:  # noqa: BLE001 - run_case reports the type; here only the outcome
        return f"raised {type(e).__name__}", str(e)


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def check_layouts(seed: int, index: int) -> Optional[dict]:
    """A case whose arrays were only stored differently (pickled, misaligned, byte-swapped,
    read-only) must give what the same values give C-contiguous and aligned."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            variant = make_case(seed, index)
            kind_v, got = _outcome(variant.call)  # some arrays are drawn inside the call
            if not variant.notes or not set(variant.notes) <= EQUIVALENT_LAYOUTS:
                return None
            kind_p, want = _outcome(make_case(seed, index, plain=True).call)
    if kind_v != kind_p or (kind_v == "returned" and not _same(got, want)):
        detail = got if kind_v != "returned" else (want if kind_p != "returned" else "different values")
        return _finding(seed, index, variant, f"layout changed the result ({kind_v} vs {kind_p} when plain)",
                        str(detail)[:300])
    return None


def _finding(seed, index, case, kind, detail):
    return {"seed": seed, "index": index, "function": case.function, "kind": kind,
            "detail": detail, "notes": list(case.notes)}


def run_range(seed: int, start: int, stop: int, trace: Optional[str] = None) -> dict:
    """Cases start..stop-1 in this process: counts per function and findings."""
    counts: Dict[str, Counter] = {}
    findings = []
    names = list(CASES)
    trace_file = open(trace, "w") if trace else None
    try:
        for index in range(start, stop):
            if trace_file:  # the driver's replay after a crash: the last line names the case
                trace_file.write(f"{index}\n")
                trace_file.flush()
            name = names[index % len(names)]
            counts.setdefault(name, Counter())
            found = run_case(seed, index, counts[name]) or check_layouts(seed, index)
            if found:
                findings.append(found)
    finally:
        if trace_file:
            trace_file.close()
    return {"counts": {k: dict(v) for k, v in counts.items()}, "findings": findings}


# ----- the driver -------------------------------------------------------------------------------

def _child(seed, start, stop, trace=None, timeout=None):
    cmd = [sys.executable, "-m", "tests.kernels.fuzz", "--child", f"{seed}:{start}:{stop}"]
    if trace:
        cmd += ["--trace", trace]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _notes(seed, index) -> List[str]:
    try:
        return make_case(seed, index).notes
    except Exception as e:  # noqa: BLE001
        return [f"(case not rebuilt: {type(e).__name__})"]


def _locate(seed, start, stop, timeout) -> List[dict]:
    """Replays a chunk that crashed or hung, one process per crash, naming each bad case."""
    findings = []
    names = list(CASES)
    while start < stop:
        with tempfile.NamedTemporaryFile("r", suffix=".trace", delete=False) as t:
            trace = t.name
        proc = _child(seed, start, stop, trace)
        try:
            out, err = proc.communicate(timeout=timeout)
            hung = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            hung = True
        with open(trace) as f:
            lines = f.read().split()
        os.unlink(trace)
        if proc.returncode == 0 and not hung:
            findings += json.loads(out)["findings"]
            break
        index = int(lines[-1]) if lines else start
        findings.append({"seed": seed, "index": index, "function": names[index % len(names)],
                         "kind": "hang" if hung else f"crash (exit {proc.returncode})",
                         "detail": err[-2000:], "notes": _notes(seed, index)})
        start = index + 1
    return findings


def drive(seed: int, cases: int, workers: int, chunk: int, timeout: float, seconds: Optional[float]) -> dict:
    t0 = time.time()
    counts: Dict[str, Counter] = {}
    findings = []
    pending = [(s, min(s + chunk, cases)) for s in range(0, cases, chunk)]
    running = []
    done_cases = 0
    while pending or running:
        while pending and len(running) < workers and (seconds is None or time.time() - t0 < seconds):
            start, stop = pending.pop(0)
            running.append((start, stop, _child(seed, start, stop), time.time()))
        if not running:
            break
        time.sleep(0.05)
        for item in list(running):
            start, stop, proc, began = item
            if proc.poll() is None and time.time() - began < timeout:
                continue
            running.remove(item)
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate()
            if proc.returncode == 0:
                report = json.loads(out)
                for name, c in report["counts"].items():
                    counts.setdefault(name, Counter()).update(c)
                findings += report["findings"]
            else:
                findings += _locate(seed, start, stop, timeout)
                for i in range(start, stop):
                    counts.setdefault(list(CASES)[i % len(CASES)], Counter())["in a crashed chunk"] += 1
            done_cases += stop - start
    elapsed = time.time() - t0
    return {"seed": seed, "cases": done_cases, "requested": cases, "seconds": round(elapsed, 1),
            "cases_per_second": round(done_cases / max(elapsed, 1e-9), 1), "workers": workers,
            "counts": {k: dict(v) for k, v in sorted(counts.items())}, "findings": findings,
            "finding_kinds": dict(Counter(f["kind"] for f in findings))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Random calls into every native kernel.")
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=5000, help="cases per child process")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a chunk counts as hung")
    ap.add_argument("--seconds", type=float, help="stop starting chunks after this long")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--replay", help="SEED:INDEX: run one case in this process and print it")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--trace", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        seed, start, stop = (int(v) for v in args.child.split(":"))
        print(json.dumps(run_range(seed, start, stop, args.trace)))
        return 0
    if args.replay:
        seed, index = (int(v) for v in args.replay.split(":"))
        case = make_case(seed, index)
        print(f"case {seed}:{index}: {case.function}, layouts/values: {case.notes or 'plain'}")
        found = run_case(seed, index)
        print(json.dumps(found, indent=2) if found else "passes")
        return 1 if found else 0
    report = drive(args.seed, args.cases, args.workers, args.chunk, args.timeout, args.seconds)
    text = json.dumps(report, indent=2)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.json)
    print(f"{report['cases']} cases in {report['seconds']} s ({report['cases_per_second']}/s), "
          f"{len(report['findings'])} finding(s): {report['finding_kinds'] or 'none'}")
    for f in report["findings"][:20]:
        print(f"  {f['seed']}:{f['index']} {f['function']}: {f['kind']} {f['detail'][:200]!r} {f['notes']}")
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
