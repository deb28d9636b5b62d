"""What the runtime's outputs say where the answer is known (`microexp eval-outputs`):

* still real faces (photos held still for a few seconds, with sensor noise and sub-pixel head
  wander, written as JPEG frames): the share of frames with any AU present, and with the emotion
  'none' (no facial action);
* real talking-face video (no micro-expression in it: every AU and event is a false alarm for a
  micro-expression reader, though speech is real facial motion): the share of frames with an AU
  present, AU onsets and events per minute;
* generated clips (training/synth.py) of faces the calibration did not use: per reported AU
  that the generator plants, the hit rate at the planted apexes; the false-AU rate at apexes
  (reported AUs present that were not planted) and on neutral frames;
* the AU classifier's honest SAMM AU LOSO figures, as its metadata states them.

Every run uses the runtime's defaults (reported AUs only, the shipped models and gate) unless
`config` says otherwise."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .action_fit import planted, read_clips, set_fps
from .synth import load_photos


def _frames(config: dict, source, fps: Optional[float] = None):
    """[(success, action present, set of AUs present, event)] for every frame, and the AU names
    the run reports."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    with Pipeline(PipelineConfig(**config)) as pipe:
        rows = [(r.success, bool(r.action_present), {n for n, on in r.au_present.items() if on}, r.event)
                for r in pipe.stream(source, fps=fps)]
        return rows, list(pipe.au_names)


def still_faces(photos: Sequence[str], config: dict, seconds: float = 2.0, fps: float = 100.0,
                seed: int = 0, workdir: Optional[str] = None) -> Dict[str, object]:
    """Each photo held still for `seconds` (training/synth.py without events or blinks)."""
    from .synth import generate
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = generate(load_photos(photos), Path(tmp), clips_per_photo=1, frames=int(seconds * fps), fps=fps,
                        events_per_clip=0, seed=seed, blinks=False)
        per_face, tracked, any_au, none, events = {}, 0, 0, 0, 0
        for photo, folder in zip(photos, sorted(p for p in root.glob("*/*") if p.is_dir())):
            rows, _ = _frames(config, folder, fps)
            ok = [r for r in rows if r[0]]
            face_any = sum(bool(r[2]) for r in ok)
            face_none = sum(not r[1] for r in ok)
            face_events = sum(r[3] is not None for r in rows)
            per_face[Path(photo).name] = {"frames": len(rows), "tracked": len(ok),
                                          "any_au_present": face_any / max(len(ok), 1),
                                          "emotion_none": face_none / max(len(ok), 1), "events": face_events}
            tracked, any_au, none = tracked + len(ok), any_au + face_any, none + face_none
            events += face_events
    return {"faces": len(photos), "seconds_each": seconds, "fps": fps, "tracked_frames": tracked,
            "any_au_present": any_au / max(tracked, 1), "emotion_none": none / max(tracked, 1),
            "events": events, "per_face": per_face}


def talking_video(videos: Sequence[str], config: dict) -> Dict[str, object]:
    per_video, frames, minutes, any_au, onsets, events = {}, 0, 0.0, 0, 0, 0
    for video in videos:
        from microexp.edge.sources import FrameSource
        source = FrameSource(video)
        fps = source.fps
        rows, _ = _frames(config, source)
        ok = [r for r in rows if r[0]]
        present = [r[2] for r in rows]
        starts = sum(len(now - before) for before, now in zip([set()] + present[:-1], present))
        count = sum(r[3] is not None for r in rows)
        mins = len(rows) / fps / 60.0
        per_video[Path(video).name] = {"frames": len(rows), "tracked": len(ok), "fps": fps,
                                       "any_au_present": sum(bool(r[2]) for r in ok) / max(len(ok), 1),
                                       "au_onsets_per_minute": starts / mins if mins else None,
                                       "events_per_minute": count / mins if mins else None}
        frames, minutes = frames + len(ok), minutes + mins
        any_au, onsets, events = any_au + sum(bool(r[2]) for r in ok), onsets + starts, events + count
    return {"videos": len(videos), "minutes": minutes, "any_au_present": any_au / max(frames, 1),
            "au_onsets_per_minute": onsets / minutes if minutes else None,
            "events_per_minute": events / minutes if minutes else None, "per_video": per_video}


def generated_clips(sets: Sequence[str], config: dict, fps: Optional[float] = None) -> Dict[str, object]:
    """Hit rate at planted apexes per reported AU the generator plants; false-AU rates. `fps`:
    the sets' frame rate when they do not say (set.json)."""
    hits: Dict[str, List[int]] = {}
    apex_false = apex_cells = calm_false = calm_cells = action_at_apex = apexes = 0
    calm_action = calm_frames = 0
    names: List[str] = []
    for root in sets:
        root = Path(root)
        rate = set_fps(root, fps or 200.0)
        for (subject, clip), info in sorted(read_clips(root).items()):
            rows, names = _frames(dict(config, fps=rate), root / subject / clip, rate)
            n = len(rows)
            strength, blink = planted(info, n, rate)
            for _, apex, _, aus in info["events"]:
                if apex >= n or not rows[apex][0]:
                    continue
                planted_aus = {f"AU{a:02d}" for a in aus}
                _, action, present, _ = rows[apex]
                apexes += 1
                action_at_apex += action
                for name in names:
                    if name in planted_aus:
                        hits.setdefault(name, []).append(int(name in present))
                    else:
                        apex_cells += 1
                        apex_false += name in present
            for t, (ok, action, present, _) in enumerate(rows):
                if ok and t >= 10 and strength[t] == 0 and not blink[t]:
                    calm_frames += 1
                    calm_action += action
                    calm_cells += len(names)
                    calm_false += len(present)
    per_au = {n: {"planted": len(v), "hit": int(sum(v)), "hit_rate": sum(v) / len(v)} for n, v in sorted(hits.items())}
    return {"sets": [str(s) for s in sets], "apexes": apexes, "reported_aus": names,
            "action_at_apex": action_at_apex / max(apexes, 1), "per_au": per_au,
            "false_au_rate_at_apex": apex_false / max(apex_cells, 1),
            "false_au_rate_neutral": calm_false / max(calm_cells, 1),
            "action_on_neutral_frames": calm_action / max(calm_frames, 1), "neutral_frames": calm_frames}


def classifier_figures(au_model: Optional[str] = None) -> Dict[str, object]:
    """The AU classifier's honest LOSO figures as its metadata states them."""
    from microexp.edge.backends import open_model
    from microexp.edge.config import MODELS
    spec = open_model(au_model or MODELS / "au_edge.onnx", "ort-cpu").spec
    quality = spec.au_quality or {}
    mean = next((v for k, v in quality.items() if k.startswith("mean_f1")), None)
    return {"model": str(au_model or "shipped"), "protocol": quality.get("protocol"), "mean_f1_min10": mean,
            "per_au": {n: quality.get("per_au", {}).get(n) for n in spec.reported_aus()},
            "bar": quality.get("bar"), "command": quality.get("command"), "reported": list(spec.reported_aus())}


def eval_outputs(still: Sequence[str] = (), talking: Sequence[str] = (), generated: Sequence[str] = (),
                 fps: Optional[float] = None, config: Optional[dict] = None, seed: int = 0) -> Dict[str, object]:
    config = dict(config or {})
    report: Dict[str, object] = {"config": config}
    if still:
        report["still"] = still_faces(still, config, seed=seed)
    if talking:
        report["talking"] = talking_video(talking, config)
    if generated:
        report["generated"] = generated_clips(generated, config, fps)
    report["classifier"] = classifier_figures(config.get("au_model"))
    return report


def print_table(report: Dict[str, object]) -> None:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"
    if "still" in report:
        s = report["still"]
        print(f"still faces ({s['faces']}, {s['tracked_frames']} tracked frames): any AU present {pct(s['any_au_present'])}, "
              f"emotion none {pct(s['emotion_none'])}, events {s['events']}")
        for name, f in s["per_face"].items():
            print(f"  {name:32s} any AU {pct(f['any_au_present']):>7s}  none {pct(f['emotion_none']):>7s}")
    if "talking" in report:
        t = report["talking"]
        print(f"talking video ({t['minutes']:.2f} min): any AU present {pct(t['any_au_present'])}, "
              f"AU onsets {t['au_onsets_per_minute']:.1f}/min, events {t['events_per_minute']:.1f}/min")
    if "generated" in report:
        g = report["generated"]
        print(f"generated clips ({g['apexes']} planted apexes): action at apex {pct(g['action_at_apex'])}, "
              f"on neutral frames {pct(g['action_on_neutral_frames'])}")
        print(f"  false-AU rate: at apex {pct(g['false_au_rate_at_apex'])}, neutral {pct(g['false_au_rate_neutral'])}")
        for name, a in g["per_au"].items():
            print(f"  {name}: hit at apex {a['hit']}/{a['planted']} = {pct(a['hit_rate'])}")
    c = report["classifier"]
    if c.get("mean_f1_min10") is not None:
        print(f"AU classifier ({c['protocol']}): mean F1 over AUs with >= 10 positives {c['mean_f1_min10']}; "
              f"reported AUs {', '.join(c['reported'])}")
