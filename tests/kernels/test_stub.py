"""kernels/_kernels.pyi against the compiled module: the same functions, classes, methods and
properties, and each callable's parameter names and defaults as pybind11 reports them."""
import ast
import inspect
import re
from pathlib import Path

from microexp import _kernels

STUB = Path(__file__).resolve().parents[2] / "kernels" / "_kernels.pyi"


def stub_tree():
    """{name: [(param, default source or None)]} for functions; classes as 'Class.method'."""
    out, properties = {}, set()
    tree = ast.parse(STUB.read_text())

    def params(fn, method):
        args = fn.args.args[1:] if method else fn.args.args
        defaults = [None] * (len(args) - len(fn.args.defaults)) + [ast.unparse(d) for d in fn.args.defaults]
        return [(a.arg, d) for a, d in zip(args, defaults)]

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = params(node, False)
        elif isinstance(node, ast.ClassDef):
            out[node.name] = None
            for fn in node.body:
                if any(getattr(d, "id", None) == "property" for d in fn.decorator_list):
                    properties.add(f"{node.name}.{fn.name}")
                else:
                    out[f"{node.name}.{fn.name}"] = params(fn, True)
    return out, properties


def compiled_params(obj, method):
    """Parameter names and defaults from pybind11's signature line 'name(a: T, b: T = v) -> R'."""
    line = obj.__doc__.strip().splitlines()[0]
    inner = line[line.index("(") + 1:line.rindex(") ->")]
    parts = [p.strip() for p in re.split(r",\s*(?![^\[]*\])", inner) if p.strip()]
    parts = parts[1:] if method else parts  # self
    out = []
    for p in parts:
        name = p.split(":")[0].strip()
        default = p.split("=", 1)[1].strip() if "=" in p else None
        out.append((name, default))
    return out


def test_the_stub_names_everything_the_module_has_and_nothing_else():
    stub, properties = stub_tree()
    compiled = {n for n in dir(_kernels) if not n.startswith("__")}
    assert {n for n in stub if "." not in n} == compiled
    for cls in (n for n in compiled if inspect.isclass(getattr(_kernels, n))):
        members = {m for m in vars(getattr(_kernels, cls)) if not m.startswith("_") or m == "__init__"}
        assert {n.split(".")[1] for n in stub if n.startswith(cls + ".")} | \
            {p.split(".")[1] for p in properties if p.startswith(cls + ".")} == members, cls


def test_every_signature_matches():
    stub, _ = stub_tree()
    for name, params in stub.items():
        if params is None:
            continue
        cls, _, member = name.partition(".")
        obj = getattr(getattr(_kernels, cls), member) if member else getattr(_kernels, name)
        want = [(p, d.strip("'\"") if d else d) for p, d in compiled_params(obj, bool(member))]
        got = [(p, d.strip("'\"") if d else d) for p, d in params]
        assert got == want, name
