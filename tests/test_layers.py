"""The package's imports point one way: no cycles, no layer importing one above it, nothing but the CLI
importing the CLI. Imports are read from the source (``ast``), so a lazy import inside a function counts as
much as one at the top of a module, and so does one under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# lowest first; a module may import its own layer and the ones below it
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("config", "records", "core"),
    ("models", "poetry", "metrics", "instagram", "samples"),
    ("stages",),
    ("executors",),
    ("pipeline", "publish"),
    ("evaluation", "train", "web"),
    ("cli", "__main__"),
]


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: no layer given in LAYERS; add it where it belongs")


def _modules(src: Path = SRC) -> dict[str, Path]:
    out = {}
    for p in sorted((src / "photopoet").rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    pkg = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(pkg + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """The photopoet modules `module` imports anywhere in its source, with the first line of each."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            # `from pkg import sub` imports the submodule; `from pkg import name` what pkg's __init__ defines
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import photopoet.stages.cull.x` -> the deepest module known
                name = name.rpartition(".")[0]
            if name and name != module and name != "photopoet":
                found.setdefault(name, node.lineno)
    return found


def import_graph(src: Path = SRC) -> dict[str, dict[str, int]]:
    known = _modules(src)
    return {m: imports_of(m, p, known) for m, p in known.items()}


def _is_cli(module: str) -> bool:
    return module == "photopoet.cli" or module.startswith("photopoet.cli.") or module.startswith("photopoet.cli_")


def test_no_import_cycles() -> None:
    graph = import_graph()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_no_module_imports_a_layer_above_its_own() -> None:
    bad = [
        f"{m}:{line} imports {d} (layer {_layer(m)} -> {_layer(d)})"
        for m, deps in import_graph().items()
        for d, line in deps.items()
        if _layer(d) > _layer(m)
    ]
    assert not bad, "\n".join(bad)


def test_only_the_cli_imports_the_cli_and_no_lower_layer_imports_the_pipeline() -> None:
    graph = import_graph()
    lower = ("core", "stages", "models", "poetry", "executors", "metrics", "records", "config", "errors")
    bad = [
        f"{m}:{line} imports {d}"
        for m, deps in graph.items()
        for d, line in deps.items()
        if (_is_cli(d) and not _is_cli(m) and m != "photopoet.__main__")
        or (d == "photopoet.pipeline" and m.split(".")[1] in lower)
    ]
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and _is_cli(node.module):
                bad.append(f"benchmarks/{script.name}:{node.lineno} imports {node.module}")
    assert not bad, "\n".join(bad)


def test_the_checks_see_a_cycle_a_lazy_import_and_an_upward_import(tmp_path: Path) -> None:
    """The walker itself: a cycle made only of lazy imports, and a stage importing the pipeline, are found."""
    pkg = tmp_path / "photopoet"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "stages" / "__init__.py").write_text("")
    (pkg / "stages" / "cull.py").write_text("def f():\n    from photopoet.pipeline import run\n")
    (pkg / "pipeline.py").write_text("from photopoet.stages import cull\n")
    graph = import_graph(tmp_path)
    assert graph["photopoet.stages.cull"] == {"photopoet.pipeline": 2}
    assert "photopoet.stages.cull" in graph["photopoet.pipeline"]
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph).static_order())
    assert _layer("photopoet.pipeline") > _layer("photopoet.stages.cull")
