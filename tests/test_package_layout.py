"""The wheel's layout: one `microexp` namespace, no generic top-level names, and the runtime
part importable without torch."""
import importlib.util
import subprocess
import sys

import microexp


def test_single_namespace():
    assert isinstance(microexp.__version__, str)
    for name in ("microexp.edge", "microexp.export", "microexp.training", "microexp.kernels",
                 "microexp._kernels"):
        assert importlib.util.find_spec(name) is not None, name
    for generic in ("edge", "export", "training", "_kernels"):
        spec = importlib.util.find_spec(generic)
        assert spec is None or "site-packages" not in str(spec.origin), generic


def test_runtime_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "import microexp.edge, microexp.kernels\n"
        "import microexp.edge.pipeline, microexp.edge.outputs, microexp.edge.cli\n"
        "import numpy as np, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "pipe = microexp.edge.pipeline.Pipeline.from_defaults()\n"  # runs end to end on ORT alone
        "assert not pipe.process(np.zeros((64, 64, 3), np.uint8)).success\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_cpp_sources_in_the_installed_package():
    import pathlib

    root = pathlib.Path(microexp.__file__).parent
    assert not list(root.rglob("*.cpp")) and not list(root.rglob("*.hpp"))
