"""`microexp batch --ray` on a local Ray instance (tests/conftest.py): the same rows as `microexp
run`, a worker killed mid-input run again with no duplicate rows, a killed driver resumed, a
corrupt input reported while the rest finish."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from microexp.cli import main

from .clip import make_clip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("raydata")
    make_clip(root / "s1" / "001", frames=16, size=384)
    make_clip(root / "s2" / "001", frames=16, size=384)
    make_clip(root / "long" / "001", frames=360, size=384)  # long enough to be killed mid-way
    (root / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(2000))
    return root


def rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not k.startswith("lat_")} for r in csv.DictReader(f)]


def batch(*args):
    return subprocess.Popen([sys.executable, "-m", "microexp.cli", "batch", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manifest(out):
    try:
        return json.loads((out / "manifest.json").read_text())["inputs"]
    except (FileNotFoundError, ValueError):
        return {}


def sequential_rows(uri, tmp_path):
    assert main(["run", uri, "--out", str(tmp_path / "run"), "--overwrite", "--no-timeline"]) == 0
    return rows(tmp_path / "run" / "frames.csv")


def test_ray_batch_gives_run_rows_and_reports_a_corrupt_input(ray_address, data, tmp_path):
    out = tmp_path / "out"
    proc = batch(data / "s1", data / "s2", data / "bad.mp4", "--out", out, "--ray", ray_address, "--workers", "2")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr  # one input failed
    assert json.loads(stdout.strip().splitlines()[-1]) == {
        "inputs": 3, "done": 2, "failed": 1, "summary": str(out / "summary.csv")}
    entries = manifest(out)
    bad = str((data / "bad.mp4").resolve())
    assert entries[bad]["state"] == "failed" and entries[bad]["error"].startswith("SourceUnavailable: ")
    for uri, entry in entries.items():
        if uri != bad:
            assert entry["state"] == "done"
            assert rows(out / entry["folder"] / "frames.csv") == sequential_rows(uri, tmp_path)


def test_a_killed_ray_worker_is_retried_and_leaves_no_duplicates(ray_address, data, tmp_path):
    out = tmp_path / "out"
    proc = batch(data / "long", "--out", out, "--ray", ray_address)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for partial in (out / ".partial").glob("*.*") if (out / ".partial").is_dir() else ():
            frames = partial / "frames.csv"
            if frames.is_file() and frames.stat().st_size > 20000:  # well into the clip
                killed = int(partial.name.rsplit(".", 1)[1])  # the worker's pid names its folder
                os.kill(killed, signal.SIGKILL)
                break
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, f"the worker was not caught mid-input: {stderr[-2000:]}"
    assert proc.returncode == 0, stderr
    (entry,) = manifest(out).values()
    produced = rows(out / entry["folder"] / "frames.csv")
    assert entry["state"] == "done" and entry["frames"] == 360
    assert [r["frame"] for r in produced] == [str(i) for i in range(360)]  # every frame once
    assert produced == sequential_rows(str((data / "long" / "001").resolve()), tmp_path)
    assert not (out / ".partial").exists()


def test_a_killed_ray_driver_resumes(ray_address, data, tmp_path):
    out = tmp_path / "out"
    inputs = [data / "s1", data / "long"]
    proc = batch(*inputs, "--out", out, "--ray", ray_address, "--workers", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        states = [e["state"] for e in manifest(out).values()]
        if "done" in states:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    first = manifest(out)
    finished = [u for u, e in first.items() if e["state"] == "done"]
    assert len(finished) == 1, first  # killed with the other input not finished
    kept = out / first[finished[0]]["folder"] / "frames.csv"
    stamp = kept.stat().st_mtime_ns
    proc = batch(*inputs, "--out", out, "--ray", ray_address, "--workers", "1")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert kept.stat().st_mtime_ns == stamp  # the finished input was not redone
    for uri, entry in manifest(out).items():
        assert entry["state"] == "done"
        assert rows(out / entry["folder"] / "frames.csv") == sequential_rows(uri, tmp_path)


def test_ray_missing_or_unreachable_is_a_clear_error(data, tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed; the unreachable-cluster message needs it")
    code = main(["batch", str(data / "s1"), "--out", str(tmp_path / "o"), "--ray", "127.0.0.1:1"])
    assert code == 2 and "microexp batch: no Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err
    assert main(["batch", str(data / "s1"), "--out", str(tmp_path / "o"), "--ray", "headnode"]) == 2
    assert "expected host:port, ray://host:port or auto" in capsys.readouterr().err


def test_without_ray_the_flag_names_the_extra(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["batch", str(data / "s1"), "--out", str(tmp_path / "o"), "--ray"]) == 2
    assert "pip install 'microexp-edge[ray]'" in capsys.readouterr().err


def test_pool_workers_die_with_a_killed_driver(data, tmp_path):
    """A driver killed with SIGKILL cannot stop its process pool: the workers ask the kernel to
    kill them when it dies, instead of going on alone."""
    out = tmp_path / "out"
    proc = batch(data / "long", data / "s1", data / "s2", "--out", out, "--workers", "2")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any((out / ".partial").glob("*.*") if (out / ".partial").is_dir() else ()):
        time.sleep(0.02)
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
    assert workers, "the pool's workers were not found"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_running, workers)):
        time.sleep(0.05)
    assert [w for w in workers if _running(w)] == []


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for its parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_local_ray_run_beside_a_running_cluster_gets_its_own(ray_address, data, tmp_path):
    """--ray with no address starts a private instance even where another Ray runs (the session's)."""
    proc = batch(data / "s1", "--out", tmp_path / "out", "--ray", "--workers", "1")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["done"] == 1
