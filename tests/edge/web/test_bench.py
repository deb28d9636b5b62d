"""The web view's benchmark runs end to end (a tiny round with in-process WebSocket pages), so
its figures in docs/serve.md stay reproducible; no speed is asserted here."""
import json

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")

from microexp.edge.web.bench import main


def test_the_benchmark_prints_a_table_and_json(capsys, tmp_path):
    out = tmp_path / "report.json"
    assert main(["--frames", "6", "--seconds", "1.5", "--rounds", "1", "--browsers", "1", "--pages", "websocket",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "median p50 ratio served/bench" in printed
    report = json.loads(out.read_text())
    served = report["rounds"][0]["served"]
    assert served["pages"] == "websocket" and served["frames"] > 0 and report["ratio_p50_median"] > 0
    assert served["delay_ms"]["p50"] >= 0 and served["cpu_cores"]["this_process"] > 0
