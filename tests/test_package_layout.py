"""The wheel's layout: one `microexp` namespace, no generic top-level names, and the runtime
part importable without torch."""
import importlib.util
import subprocess
import sys

import microexp


def test_single_namespace():
    assert isinstance(microexp.__version__, str)
    for name in ("microexp.edge", "microexp.export", "microexp.training", "microexp.kernels",
                 "microexp._kernels", "microexp.cli"):
        assert importlib.util.find_spec(name) is not None, name
    for generic in ("edge", "export", "training", "_kernels", "cli"):
        spec = importlib.util.find_spec(generic)
        assert spec is None or "site-packages" not in str(spec.origin), generic


def test_runtime_imports_without_torch():
    # Every module of the runtime and the kernels, the CLI, and a pipeline and `microexp run`
    # end to end, with any `import torch` raising ImportError; no warning either.
    code = (
        "import sys, pkgutil, importlib, warnings, tempfile\n"
        "sys.modules['torch'] = None\n"
        "warnings.simplefilter('error')\n"
        "import microexp.edge, microexp.kernels, microexp.cli\n"
        "for pkg in (microexp.edge, microexp.kernels):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "import numpy as np\n"
        "from microexp.edge.pipeline import Pipeline\n"
        "with Pipeline.from_defaults() as pipe:\n"
        "    assert not pipe.process(np.zeros((64, 64, 3), np.uint8)).success\n"
        "from microexp.cli import main\n"
        "assert main(['run', '--max-frames', '3', '--no-timeline', '--out', tempfile.mkdtemp()]) == 0\n"
        "assert main(['train', 'loso', '--set', 'megc']) == 2\n"  # a stand-in naming the install line
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "microexp train: needs torch, which is not installed; pip install torch==2.13.0" in done.stderr


def test_no_cpp_sources_in_the_installed_package():
    import pathlib

    root = pathlib.Path(microexp.__file__).parent
    assert not list(root.rglob("*.cpp")) and not list(root.rglob("*.hpp"))
