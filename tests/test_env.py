"""scripts/env.sh: each clone gets its own .venv (its erts is its own code), set up once, rebuilt when
requirements.txt changes. The clones here are small copies of this one with a one-package
requirements file, so a build takes seconds from the shared package cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and sha256sum")


def make_clone(dst: Path, requirements: str = "PyYAML>=6.0\n") -> Path:
    (dst / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "env.sh", dst / "scripts" / "env.sh")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "src" / "erts", dst / "src" / "erts", ignore=shutil.ignore_patterns("__pycache__"))
    (dst / "requirements.txt").write_text(requirements)
    return dst


def env_sh(clone: Path, **extra: str) -> tuple[str, str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("ERTS_VENV", "VIRTUAL_ENV", "UV_CACHE_DIR")}
    env.update(extra)
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(clone / "scripts" / "env.sh")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    return res.stdout, res.stderr, time.monotonic() - t0


def erts_file(venv: Path) -> Path:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import erts; print(erts.__file__)"],
                         capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


@pytest.mark.slow
def test_each_clone_has_its_own_venv_rebuilt_when_requirements_change(tmp_path):
    a, b = make_clone(tmp_path / "a"), make_clone(tmp_path / "b")
    out_a, err_a, _ = env_sh(a)
    out_b, _, _ = env_sh(b)
    venv_a, venv_b = Path(out_a.strip()), Path(out_b.strip())
    assert out_a.count("\n") == 1 and venv_a == a / ".venv" and venv_b == b / ".venv"  # stdout: the path only
    assert "creating" in err_a
    # each venv runs its own clone's code (a shared venv ran whichever clone installed last)
    assert erts_file(venv_a) == a / "src" / "erts" / "__init__.py"
    assert erts_file(venv_b) == b / "src" / "erts" / "__init__.py"
    assert (venv_a / "bin" / "erts").exists()

    marker = (venv_a / ".erts-complete").read_text().split()
    digest = subprocess.run(["sha256sum", str(a / "requirements.txt")], capture_output=True, text=True,
                            check=True).stdout.split()[0]
    assert marker == [digest, str(venv_a)]

    installer = (venv_a / ".erts-installer").read_text().split()
    if installer[0] == "uv":  # uv is handed pip's index settings (it does not read pip.conf)
        cfg = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
        for line in cfg.splitlines():
            if ".extra-index-url=" in line:
                for url in line.split("=", 1)[1].strip("'\"").split():
                    assert url in installer

    # set up already: nothing to do, nothing printed, milliseconds
    mtime = (venv_a / ".erts-complete").stat().st_mtime_ns
    out, err, seconds = env_sh(a)
    assert out == out_a and err == "" and seconds < 2.0
    assert (venv_a / ".erts-complete").stat().st_mtime_ns == mtime

    # a changed requirements file rebuilds the venv
    (a / "requirements.txt").write_text("PyYAML>=6.0\ntqdm>=4.66\n")
    out, err, _ = env_sh(a)
    assert out == out_a and "creating" in err
    assert (venv_a / ".erts-complete").read_text().split()[0] != digest
    subprocess.run([str(venv_a / "bin" / "python"), "-c", "import tqdm, yaml"], check=True)
    assert erts_file(venv_a) == a / "src" / "erts" / "__init__.py"


def test_a_folder_that_is_not_a_venv_is_never_deleted(tmp_path):
    clone = make_clone(tmp_path / "c")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    env = {k: v for k, v in os.environ.items() if k != "ERTS_VENV"}
    res = subprocess.run(["bash", str(clone / "scripts" / "env.sh")], capture_output=True, text=True,
                         env={**env, "ERTS_VENV": str(precious)}, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert "is not a virtual environment" in res.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_venv_is_ignored_by_git():
    res = subprocess.run(["git", "check-ignore", "-q", ".venv/x"], cwd=ROOT)
    if res.returncode == 128:
        pytest.skip("not a git checkout")
    assert res.returncode == 0
