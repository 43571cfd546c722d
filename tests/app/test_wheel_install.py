"""``fnn`` from a wheel: built from the project's files, installed (not editable) into a fresh virtual environment,
then run from a folder outside the repository, where no checkout, fixture or ``scripts/`` can be found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEEL_FILES = ("pyproject.toml", "README.md", "functional_nn", "pipelines")  # all that the wheel is built from


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def installed_fnn(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The ``fnn`` console script of a fresh venv holding the wheel, and an environment without PYTHONPATH."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: an in-tree build would leave build/ and stale modules in the checkout
    src.mkdir()
    for name in WHEEL_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    # Build isolation: the build needs setuptools>=68 and bdist_wheel, which the test's own Python may lack.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)])
    (wheel,) = (tmp / "dist").glob("functional_nn-*.whl")
    venv.create(tmp / "venv", with_pip=False)
    bin_dir = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    _run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", str(wheel)], env=env)
    return bin_dir / "fnn", env


@pytest.mark.slow
def test_fnn_bench_quick_runs_from_a_wheel_outside_the_repository(installed_fnn, tmp_path):
    fnn, env = installed_fnn
    done = _run([str(fnn), "bench", "--quick", "--json"], cwd=tmp_path, env=env)
    report = json.loads(done.stdout)
    assert set(report["configs"]) == {"a", "b"}
    for cfg in report["configs"].values():
        for name in ("floor", "fed", "ours"):
            assert cfg["timings"][name]["median"] > 0
    assert report["settings"]["data"] == "synthetic CSV" and report["settings"]["rows"] == 512
    assert any("synthetic rows" in note for note in report["notes"])
    assert report["train"] == {"skipped": "--quick"}
    where = _run([str(fnn.parent / "python"), "-c", "import functional_nn; print(functional_nn.__file__)"],
                 cwd=tmp_path, env=env).stdout
    assert str(REPO) not in where and "site-packages" in where  # the wheel's copy ran, not the checkout


@pytest.mark.slow
def test_fnn_help_runs_from_a_wheel(installed_fnn, tmp_path):
    fnn, env = installed_fnn
    done = _run([str(fnn), "--help"], cwd=tmp_path, env=env)
    assert "bench" in done.stdout and "train" in done.stdout
