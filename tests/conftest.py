"""A local Ray instance for the tests of `--ray` (batch and LOSO): started once, with two CPUs, by
`ray start` as a user would, with token authentication (the token in this session's environment,
which the drivers the tests start inherit), and stopped at the end of the session (`ray stop`
stops every Ray process of the machine, so the tests skip where one already runs)."""
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install '.[ray]'); the --ray tests skip")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not on PATH; the --ray tests skip")
    if shutil.which("pgrep") and subprocess.run(["pgrep", "-x", "raylet"], capture_output=True).returncode == 0:
        pytest.skip("a Ray instance already runs on this machine; the --ray tests would stop it (ray stop), so they skip")
    port = _free_port()
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    # Before this process imports Ray: it reads the token settings once.
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    started = subprocess.run([ray_cli, "start", "--head", "--port", str(port),
                              "--num-cpus", "2", "--object-store-memory", str(200 * 2 ** 20),
                              "--include-dashboard", "false", "--disable-usage-stats"],
                             capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.fail(f"ray start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
