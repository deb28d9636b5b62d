"""Kernels release the GIL and keep no shared mutable state: concurrent calls from several
Python threads return exactly what sequential calls return."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from microexp import kernels as K

from .corpus import flow_field, texture


def work(seed):
    rng = np.random.default_rng(seed)
    frame = texture(rng, 160, 170, 3, "face_like")
    tpl = frame[30:130, 40:140].copy()
    flow = flow_field(rng, 112 + seed % 3, 112, "smooth")
    return (
        K.match_template(frame, tpl, mode="pyramid"),
        K.match_template(frame, tpl, mode="exact"),
        K.align_crop(frame, tpl, (40, 30, 140, 130), margin=20)[0],
        K.encode_hsv28(flow),
        K.encode_uvs28(flow),
    )


def same(a, b):
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_concurrent_calls_match_sequential_results():
    seeds = list(range(24))
    sequential = [work(s) for s in seeds]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(work, seeds * 2))
    for i, result in enumerate(concurrent):
        expected = sequential[i % len(seeds)]
        assert all(same(a, b) for a, b in zip(result, expected))
