"""Layering runs one way: the core (heta_lite) imports none of the folders built on it (quant/,
gui/, experiments/, run.py, tests/) nor the transitional profiling/ re-export; quantized loading
plugs into the loader from below. Read from the source with `ast`, imports inside functions and
`importlib.import_module("...")` strings included, so a lazy import cannot hide one."""
from __future__ import annotations

import ast
from pathlib import Path

import heta_lite

CORE = Path(heta_lite.__file__).resolve().parent
ABOVE_THE_CORE = {"quant", "gui", "experiments", "profiling", "run", "tests"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`; relative ones resolved."""
    package = ".".join(path.relative_to(CORE.parent).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(CORE.parent).parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                out.append((node.lineno, node.module or ""))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def _core_files() -> list[Path]:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 40 and CORE / "engine.py" in files
    return files


def test_the_core_imports_nothing_built_on_it():
    bad = [f"{path.relative_to(CORE.parent)}:{line}: imports {name}" for path in _core_files()
           for line, name in _imports(path) if name.split(".")[0] in ABOVE_THE_CORE]
    assert not bad, "\n".join(bad)


def test_quantization_sits_below_the_loader():
    allowed = {"heta_lite.errors", "heta_lite.settings"}
    bad = [f"{path.relative_to(CORE.parent)}:{line}: imports {name}"
           for path in sorted((CORE / "quantization").rglob("*.py")) for line, name in _imports(path)
           if name.startswith("heta_lite") and not name.startswith("heta_lite.quantization") and name not in allowed]
    assert not bad, "\n".join(bad)


def test_the_scanner_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The scan itself: a function-level import and a relative one are both resolved."""
    fake = CORE / "methods" / "heta" / "gate.py"
    names = {name for _, name in _imports(fake)}
    assert "heta_lite.tensors" in names and "heta_lite.models.loader" in names
    engine = {name for _, name in _imports(CORE / "engine.py")}
    assert "heta_lite.methods" in engine and "heta_lite.quantization.derivatives" in engine
    cli = {name for _, name in _imports(CORE / "cli.py")}
    assert "importlib.metadata" in cli and not any(n.startswith("quant") for n in cli)
