"""The model benchmark's table: every shipped kind of model, and an HTNet for the layout
comparison even when no shipped model is one."""
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def test_bench_adds_an_edge_size_htnet_when_no_checkpoint_is_one(tmp_path, capsys):
    import numpy as np

    from microexp.export import bench
    from microexp.training.checkpoint import save_checkpoint
    from microexp.training.experiment import Experiment
    from microexp.training.linear_fit import fit_linear
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 255, (12, 3, 28, 28)).astype(np.float32)
    exp = Experiment(task="emotion", model="linear", input="whole",
                     model_args=dict(pool=4, features="raw", c_grid=[0.1, 1.0]))
    model = fit_linear(exp, maps, np.arange(12) % 3, np.repeat(np.array(list("abcd")), 3))
    save_checkpoint(tmp_path / "lin.pt", model, exp, dataset="megc",
                    labels=["negative", "positive", "surprise"], metrics={}, provenance="test")
    report = bench.run(tmp_path, repeats=3)
    models = {r["model"] for r in report["results"]}
    assert models == {"lin", "htnet_seed_size"}
    backends = {r["backend"] for r in report["results"] if r["model"] == "htnet_seed_size"}
    assert backends == {"pytorch-eager", "ort-fp32", "ort-int8", "ort-fp32-nchw"}
    counts = report["optimised_nodes"]["htnet_seed_size"]
    assert counts["ort-fp32"] < counts["ort-fp32-nchw"]
    bench.print_table(report)
    lines = capsys.readouterr().out.splitlines()
    assert len({len(l) for l in lines[1:-1]}) == 1  # the long model name keeps the columns aligned
