"""No import cycle inside ``device/`` or ``trainer/``: the modules form layers a reader can follow bottom up.

The imports are read from the source (``ast``), at module level and inside functions alike (a lazy import
is still a dependency), except under ``if TYPE_CHECKING:`` and ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO


def modules(package: str) -> dict[str, Path]:
    root = REPO / package
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _skipped(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` blocks."""
    if not isinstance(node, ast.If):
        return False
    text = ast.unparse(node.test)
    return "TYPE_CHECKING" in text or text.replace("'", '"') == '__name__ == "__main__"'


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` (module ``name``) imports."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _skipped(child):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    resolved = set()
    for target in out:
        while target and target not in known:  # device.locate.Box -> device.locate
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def graph_of(*packages: str) -> dict[str, set[str]]:
    found = {}
    for package in packages:
        found.update(modules(package))
    known = set(found)
    return {name: imports(path, name, known) for name, path in found.items()}


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []




@pytest.mark.parametrize("package", ["device", "trainer"])
def test_no_import_cycle(package):
    graph = graph_of("device", "trainer")
    found = [c for c in cycles(graph) if any(m.split(".")[0] == package for m in c)]
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_device_imports_nothing_from_the_trainer_or_the_cli_below_it():
    graph = graph_of("device", "trainer")
    for name, targets in graph.items():
        if name.startswith("device"):
            assert not any(t.startswith("trainer") for t in targets), (name, targets)
            assert name == "device.cli" or "device.cli" not in targets, name


def test_a_training_config_parses_without_keras():
    import subprocess
    import sys

    code = ("import sys; from trainer.train_config import load_config; load_config('configs/digitcam-v2.toml'); "
            "sys.exit(3 if 'keras' in sys.modules or 'tensorflow' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or "parsing a config imported Keras"
