"""One long input analysed in time ranges by several workers, merged into exactly the rows and
events of one sequential run.

The pipeline carries state from frame to frame (a tracked face's template and onset reference,
its spotter's baseline, a lost face remembered for forget_s, the idle schedule), so a range
cannot simply start afresh at its first frame. Each range k owns frames [b_k, b_k+1) and starts
`overlap` frames earlier with a fresh pipeline; for every frame it records the results, whether
the rows wait for an open interval, and the pipeline's sync key (Pipeline.sync_key: equal keys
mean equal results from then on, up to where face ids are counted from). The merge walks the
ranges in order: where the run so far and range k+1 have the same key on a frame of the overlap,
range k+1's results take over after that frame (its face ids shifted by the ids handed out before).
Where they never do (a face tracked across the boundary, or a lost one not yet forgotten), the
run so far is recomputed from its own fresh start and carried on past the boundary until it
meets a later range's key, or the input's end. So the output is always the sequential run's;
what the split saves depends on the input: a recording with stretches of forget_s and more
without a face (a camera in an empty room) syncs at nearly every boundary, a clip with a face
throughout never does and costs a sequential run plus the wasted ranges."""
from __future__ import annotations

import math
import pickle
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from .atomic_io import replacing
from .config import PipelineConfig
from .sources import Frame, FrameSource


class Record(NamedTuple):
    """What a range keeps of one frame."""
    index: int
    timestamp: float
    results: list
    hold: bool  # its rows wait for an open interval
    key: Optional[tuple]  # Pipeline.sync_key after it
    ids: int  # face ids handed out so far
    digest: int  # of the picture (every 4th pixel): a range's frames are checked against the run before it


@dataclass(frozen=True)
class TimeRange:
    run_from: int  # where its fresh pipeline starts (the overlap before `start`)
    start: int  # its own first frame
    end: Optional[int]  # one past its own last frame; None: to the input's end


def plan(frames: int, fps: float, split_s: float, overlap_s: float) -> List[TimeRange]:
    """Ranges of split_s seconds (the last one to the end) over `frames` frames, each started
    overlap_s earlier; one range when the input is not longer than split_s and a half."""
    if split_s <= 0 or overlap_s < 0:
        raise ValueError(f"--split needs a positive range length and an overlap >= 0, got {split_s} and {overlap_s}")
    size = max(1, int(round(split_s * fps)))
    back = int(math.ceil(overlap_s * fps))
    count = max(1, int(round(frames / size)))
    starts = [k * size for k in range(count)]
    return [TimeRange(max(0, s - back), s, starts[k + 1] if k + 1 < count else None) for k, s in enumerate(starts)]


def least_overlap_s(config: PipelineConfig) -> float:
    """The shortest overlap in which a range can meet the run before it: a lost face forgotten,
    the idle state's every-frame looks over and one slow look slot passed."""
    return config.forget_s + (config.idle_after_ms + config.idle_max_interval_ms) / 1e3


def _records(uri: str, config: PipelineConfig, run_from: int, end: Optional[int]) -> Iterator[Record]:
    from .pipeline import Pipeline
    with Pipeline(PipelineConfig(**vars(config))) as pipe, FrameSource(uri, start=run_from) as source:
        if source.fps:
            pipe.use_fps(source.fps)
        for frame in source:
            if end is not None and frame.index >= end:
                break
            results = pipe.process_faces(frame.image, frame.index, frame.timestamp)
            yield Record(frame.index, frame.timestamp, results, pipe.events_pending(frame.index),
                         pipe.sync_key(frame.timestamp), pipe.faces_started, zlib.crc32(frame.image[::4, ::4].tobytes()))


def analyse_range(uri: str, config: Dict[str, object], part: TimeRange, path: str) -> str:
    """A task: one range's records (from its overlap on) pickled to `path`, written whole."""
    records = list(_records(uri, PipelineConfig(**config), part.run_from, part.end))
    with replacing(path) as tmp, open(tmp, "wb") as f:
        pickle.dump({"range": part, "records": records}, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


class _Run:
    """Records by frame index (a folder's unreadable image leaves a gap): a range's, from its file."""

    def __init__(self, records: List[Record]):
        self.records = records
        self._by_index = {r.index: r for r in records}

    def at(self, index: int) -> Optional[Record]:
        return self._by_index.get(index)


def _load(path: str) -> _Run:
    with open(path, "rb") as f:
        return _Run(pickle.load(f)["records"])


def _sync(run: _Run, other: _Run, since: int) -> Optional[int]:
    """The first frame from `since` on which both have the same sync key, provided every frame of
    `other` up to it is the run's picture (a video sought to the range's start may land on
    another frame: variable frame rates, imprecise indexes); None: none."""
    for record in other.records:
        mine = run.at(record.index)
        if mine is None or mine.digest != record.digest:
            return None
        if record.index >= since and mine.key is not None and mine.key == record.key:
            return record.index
    return None


def merged(uri: str, config: PipelineConfig, parts: List[TimeRange], paths: List[str],
           stats: Dict[str, int]) -> Iterator[Tuple[Frame, list, bool]]:
    """(frame, results, hold) of the whole input, as one sequential run gives them (the frames
    carry no picture). `stats` gets: ranges; taken_over (ranges whose results were used from a
    frame on: at their own boundary or, after frames computed again, at a later one);
    recomputed_frames (frames computed again because a range did not take over in time)."""
    stats.update(ranges=len(parts), taken_over=0, recomputed_frames=0)
    run, run_from = _load(paths[0]), parts[0].run_from
    offset, pos, k = 0, 0, 1  # ids added to the run's; the next frame to give; the next range
    while True:
        nxt = _load(paths[k]) if k < len(parts) else None
        f = _sync(run, nxt, pos) if nxt is not None else None
        if nxt is None or f is not None:
            for record in run.records:
                if record.index >= pos and (f is None or record.index <= f):
                    yield _replayed(record, offset)
            if nxt is None:
                return
            ids_then = run.at(f).ids
        else:
            # No common state in the overlap: carry the run on from its own start (a fresh
            # pipeline from the same frame gives the same records) until it meets a later range
            # whose pictures have all been the run's.
            met, last, active, lo, wrong = None, None, {}, k, set()
            for record in _records(uri, config, run_from, None):
                if record.index < pos:
                    continue  # given already
                stats["recomputed_frames"] += 1
                yield _replayed(record, offset)
                last = record
                while lo < len(parts) and parts[lo].end is not None and parts[lo].end <= record.index:
                    active.pop(lo, None)
                    lo += 1
                for j in range(lo, len(parts)):
                    if parts[j].run_from > record.index:
                        break
                    if j in wrong:
                        continue
                    other = active.get(j) or active.setdefault(j, _load(paths[j]))
                    theirs = other.at(record.index)
                    if theirs is None or theirs.digest != record.digest:
                        wrong.add(j)
                    elif record.key is not None and theirs.key == record.key:
                        met = (j, other)
                        break
                if met is not None:
                    break
            if met is None:  # the input's end
                return
            k, nxt = met
            f, ids_then = last.index, last.ids
        stats["taken_over"] += 1
        offset += ids_then - nxt.at(f).ids
        run, run_from, pos, k = nxt, parts[k].run_from, f + 1, k + 1


def _replayed(record: Record, offset: int) -> Tuple[Frame, list, bool]:
    if offset:
        for r in record.results:
            if r.face_id is not None:
                r.face_id += offset
            if r.event is not None:
                r.event.face_id += offset
    return Frame(record.index, record.timestamp, None), record.results, record.hold
