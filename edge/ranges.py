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
import os
import pickle
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from .config import PipelineConfig
from .sources import Frame, FrameSource

# A frame's record: (index, timestamp, results, hold, sync key, face ids handed out so far).
Record = Tuple[int, float, list, bool, Optional[tuple], int]


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
            yield (frame.index, frame.timestamp, results, pipe.events_pending(frame.index),
                   pipe.sync_key(frame.timestamp), pipe.faces_started)


def analyse_range(uri: str, config: Dict[str, object], part: TimeRange, path: str) -> str:
    """A task: one range's records (from its overlap on) pickled to `path`, written whole."""
    records = list(_records(uri, PipelineConfig(**config), part.run_from, part.end))
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump({"range": part, "records": records}, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return path


class _Run:
    """Records by frame index: a range's from its file, or a rerun from a fresh start."""

    def __init__(self, records: List[Record]):
        self.first = records[0][0] if records else 0
        self.records = records

    def at(self, index: int) -> Optional[Record]:
        i = index - self.first
        return self.records[i] if 0 <= i < len(self.records) else None


def _load(path: str) -> _Run:
    with open(path, "rb") as f:
        return _Run(pickle.load(f)["records"])


def _sync(run: _Run, other: _Run, since: int) -> Optional[int]:
    """The first frame from `since` on which both have the same sync key (None: none)."""
    for record in other.records:
        mine = run.at(record[0])
        if record[0] >= since and mine is not None and mine[4] is not None and mine[4] == record[4]:
            return record[0]
    return None


def merged(uri: str, config: PipelineConfig, parts: List[TimeRange], paths: List[str],
           stats: Dict[str, int]) -> Iterator[Tuple[Frame, list, bool]]:
    """(frame, results, hold) of the whole input, as one sequential run gives them (the frames
    carry no picture). `stats` gets: ranges, synced (boundaries where a range took over),
    recomputed_frames (frames run again because a boundary did not sync)."""
    stats.update(ranges=len(parts), synced=0, recomputed_frames=0)
    run, run_from = _load(paths[0]), parts[0].run_from
    offset, pos, k = 0, 0, 1  # ids added to the run's; the next frame to give; the next range
    while True:
        nxt = _load(paths[k]) if k < len(parts) else None
        f = _sync(run, nxt, pos) if nxt is not None else None
        if nxt is None or f is not None:
            for record in run.records:
                if record[0] >= pos and (f is None or record[0] <= f):
                    yield _replayed(record, offset)
            if nxt is None:
                return
            ids_then = run.at(f)[5]
        else:
            # No common state in the overlap: carry the run on from its own start (a fresh
            # pipeline from the same frame gives the same records) until it meets a later range.
            met, last, active, lo = None, None, {}, k
            for record in _records(uri, config, run_from, None):
                if record[0] < pos:
                    continue  # given already
                stats["recomputed_frames"] += 1
                yield _replayed(record, offset)
                last = record
                while lo < len(parts) and parts[lo].end is not None and parts[lo].end <= record[0]:
                    active.pop(lo, None)
                    lo += 1
                for j in range(lo, len(parts)):
                    if parts[j].run_from > record[0]:
                        break
                    other = active.get(j) or active.setdefault(j, _load(paths[j]))
                    theirs = other.at(record[0])
                    if record[4] is not None and theirs is not None and theirs[4] == record[4]:
                        met = (j, other)
                        break
                if met is not None:
                    break
            if met is None:  # the input's end
                return
            k, nxt = met
            f, ids_then = last[0], last[5]
        stats["synced"] += 1
        offset += ids_then - nxt.at(f)[5]
        run, run_from, pos, k = nxt, parts[k].run_from, f + 1, k + 1


def _replayed(record: Record, offset: int) -> Tuple[Frame, list, bool]:
    index, timestamp, results, hold, _, _ = record
    if offset:
        for r in results:
            if r.face_id is not None:
                r.face_id += offset
            if r.event is not None:
                r.event.face_id += offset
    return Frame(index, timestamp, None), results, hold
