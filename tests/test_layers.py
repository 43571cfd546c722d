"""The import contracts of STYLE.md section 1, as written in pyproject.toml ``[tool.importlinter]``.

This file sits at the top of tests/ because it concerns every package at once: the core, the application and
pipelines. ``lint-imports`` runs in a subprocess from the directory that holds the packages (import-linter puts
its working directory first on ``sys.path``, so it reads this checkout, not an installed copy), through the
console script's own entry point under ``sys.executable``: no dependence on PATH or on where pip put the script.
``--no-cache`` keeps it from writing cache folders into the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
# What the core must never load: the other package, the application, and the libraries only the app uses.
NOT_IN_CORE = ("pipelines", "functional_nn.app", "argparse", "matplotlib", "tqdm", "PIL")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """Run ``lint-imports`` with ``cwd`` as the project root (its pyproject.toml and packages)."""
    pytest.importorskip("importlinter", reason="import-linter is not installed: pip install -e '.[dev]'")
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_lint_imports_passes_on_this_tree():
    result = lint_imports(REPO_ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"lint-imports failed (exit {result.returncode}):\n{output}"
    assert " 0 broken" in output, output


def test_importing_the_core_loads_neither_pipelines_nor_the_app_nor_their_libraries():
    code = (
        "import sys; before = set(sys.modules)\n"
        "import functional_nn\n"
        f"roots = {NOT_IN_CORE!r}\n"
        "new = sorted(m for m in set(sys.modules) - before if any(m == r or m.startswith(r + '.') for r in roots))\n"
        "print(functional_nn.__file__); print(new)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    where, loaded = result.stdout.splitlines()
    assert Path(where).resolve().is_relative_to(REPO_ROOT), f"imported {where}, not this checkout"
    assert loaded == "[]", f"importing functional_nn loaded {loaded}"


@pytest.mark.parametrize("line, forbidden", [("import pipelines", "pipelines"), ("import argparse", "argparse")])
def test_contracts_catch_a_forbidden_import_in_a_core_module(tmp_path, line, forbidden):
    """A copy of the tree with one bad import appended to the lowest core module must fail the lint."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("functional_nn", "pipelines"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    clean = lint_imports(tmp_path)
    assert clean.returncode == 0, f"the unchanged copy fails already:\n{clean.stdout}{clean.stderr}"

    ops = tmp_path / "functional_nn" / "ops.py"
    ops.write_text(ops.read_text() + f"\n{line}  # a violation planted by tests/test_layers.py\n")
    result = lint_imports(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"lint-imports did not catch `{line}` (exit {result.returncode}):\n{output}"
    assert f"functional_nn.ops is not allowed to import {forbidden}" in output, output


def test_every_core_module_has_its_place_in_the_layers_contract():
    """A new core module must be placed in a layer: the layers contract does not check a module it does not name."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers" and c.get("containers") == ["functional_nn"])
    named = {m.strip(" ()") for layer in layers["layers"] for m in layer.split("|")}
    modules = {p.stem for p in (REPO_ROOT / "functional_nn").glob("*.py") if p.stem not in ("__init__", "__main__")}
    modules |= {p.name for p in (REPO_ROOT / "functional_nn").iterdir() if (p / "__init__.py").is_file()}
    assert modules == named, f"core modules not in a layer: {sorted(modules - named)}; named but absent: " \
                             f"{sorted(named - modules)}"
