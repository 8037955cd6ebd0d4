"""The package's architecture, checked from its source: imports only go down the layers, and none forms a cycle."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clstm_jax"
# bottom to top; a module may import its own layer and those below it
LAYERS = ["core", "data", "model", "config", "training", "evaluation", "study", "cli"]
TOP = {"clstm_jax", "clstm_jax.__main__", "clstm_jax.cli"}  # the CLI and the package's entry points


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    if module in TOP:
        return len(LAYERS) - 1
    return LAYERS.index(module.split(".")[1])


def imports(module: str) -> set[str]:
    """Every project module `module` imports, at its top or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports(module) for module in MODULES}


def test_every_module_sits_in_a_layer_package():
    assert sorted({m.split(".")[1] for m in MODULES if m not in TOP}) == sorted(LAYERS[:-1])
    assert all(Path(MODULES[m]).read_text().lstrip().startswith('"""') for m in MODULES)  # each says what it owns


def test_imports_only_go_down_the_layers():
    upward = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps if layer(d) > layer(m))
    assert upward == []


def test_no_import_cycle():
    """Depth-first search over every import (lazy ones too); a back edge is a cycle."""
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_walker_sees_an_upward_import_and_a_cycle(tmp_path):
    """The checks above could fail: a hand-made graph with one upward edge and one cycle is caught."""
    global GRAPH
    saved = GRAPH
    try:
        GRAPH = {"clstm_jax.core.a": {"clstm_jax.study.b"}, "clstm_jax.study.b": {"clstm_jax.core.a"}}
        for check in (test_imports_only_go_down_the_layers, test_no_import_cycle):
            try:
                check()
            except AssertionError:
                continue
            raise AssertionError(f"{check.__name__} passed on a bad graph")
    finally:
        GRAPH = saved


def test_import_clstm_jax_loads_no_study_module_and_no_jax():
    code = "import sys, clstm_jax; print(' '.join(sorted(m for m in sys.modules if m.startswith(('clstm_jax', 'jax')))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["clstm_jax"]
