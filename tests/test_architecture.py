"""The package's import structure: the pipeline's layers depend one way.

* perturbation, the run folder and betadata never import training;
* the library never imports the programs (``cli/``, where every console script lives) or argparse;
* module-level imports have no cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spacetravlr_py

PKG = Path(spacetravlr_py.__file__).resolve().parent
NAME = PKG.name


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom | ast.Import, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    # "from . import x" may import submodules
    return [target] + [f"{target}.{a.name}" for a in node.names]


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mod = _module_name(path)
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for n in nodes:
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
                continue
            if isinstance(n, ast.Import | ast.ImportFrom):
                out.update(_resolve(mod, n, is_pkg))
            elif not module_level_only:
                visit([c for c in ast.iter_child_nodes(n) if isinstance(c, ast.stmt)])
            elif isinstance(n, ast.Try | ast.If):
                visit(n.body)

    if module_level_only:
        visit(tree.body)
    else:
        for n in ast.walk(tree):
            if isinstance(n, ast.Import | ast.ImportFrom):
                out.update(_resolve(mod, n, is_pkg))
    return out


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


@pytest.mark.parametrize("layer", ["perturb", "rundir", "betadata"])
def test_lower_layers_never_import_training(layer):
    bad = {m: sorted(i for i in _imports(p, module_level_only=False) if i.startswith(f"{NAME}.training"))
           for m, p in MODULES.items() if m.startswith(f"{NAME}.{layer}")}
    assert not {m: v for m, v in bad.items() if v}


def test_library_never_imports_the_programs_or_argparse():
    bad = {}
    for m, p in MODULES.items():
        if m.startswith(f"{NAME}.cli"):
            continue
        hits = sorted(i for i in _imports(p, module_level_only=False)
                      if i.startswith(f"{NAME}.cli") or i == "argparse")
        if hits:
            bad[m] = hits
    assert not bad


def test_no_import_cycles_at_module_level():
    graph = {m: {i for i in _imports(p, module_level_only=True) if i in MODULES and i != m}
             for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is how packages expose names, not a cycle
    for m in graph:
        graph[m] = {i for i in graph[m] if not (i.startswith(m + ".") and MODULES[m].name == "__init__.py")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def dfs(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                dfs(v)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)
    assert not cycles, cycles[:3]


def test_the_checker_sees_imports():
    """Guard against a checker that finds nothing: the training run does import the run folder."""
    imps = _imports(MODULES[f"{NAME}.training.run"], module_level_only=True)
    assert f"{NAME}.rundir" in imps and f"{NAME}.training.trainer" in imps
