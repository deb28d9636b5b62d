"""The package's layers, read from the source with ast (nothing is imported): kernels <- edge <-
training <- export <- cli. No module imports a higher layer, lazily or not, and no modules
import each other in a circle (a package importing its own submodules is not a circle)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("kernels", "edge", "training", "export", "cli")


def module_files():
    """{'microexp.edge.pipeline': path, ...} for every .py under the layer folders."""
    out = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = ["microexp", *path.relative_to(ROOT).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = module_files()


def imported_names(name: str, path: Path):
    """Every module name an import statement in the file names, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES)


def layer_of(name: str):
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[0] == "microexp" and parts[1] in LAYERS else None


def graph():
    """module -> the project modules it imports (the longest known prefix of each name)."""
    edges = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in imported_names(name, path):
            while imported and imported not in MODULES:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def test_the_checker_sees_the_whole_package():
    assert {"microexp.edge.pipeline", "microexp.cli", "microexp.training.loso", "microexp.edge.trt.build"} <= set(MODULES)
    assert "microexp.edge.backends.base" in graph()["microexp.edge.trt.engine"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_higher_layer(name):
    upward = sorted(t for t in graph()[name] if layer_of(t) > layer_of(name))
    assert not upward, f"{name} imports a higher layer: {upward}"


def _circles(edges):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _own_package(component):
    """A package and its own submodules only (its __init__ re-exporting them)."""
    top = min(component, key=len)
    return all(m == top or m.startswith(top + ".") for m in component)


def test_no_import_circles():
    circles = [c for c in _circles(graph()) if not _own_package(c)]
    assert not circles, f"modules importing each other in a circle: {circles}"


def test_a_circle_and_an_upward_import_are_caught():
    edges = {"microexp.edge.a": {"microexp.edge.b"}, "microexp.edge.b": {"microexp.edge.a"},
             "microexp.edge.c": set()}
    assert _circles(edges) == [["microexp.edge.a", "microexp.edge.b"]]
    assert layer_of("microexp.export.x") > layer_of("microexp.edge.a")
