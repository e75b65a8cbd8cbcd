"""benchmarks/gpu_check.sh on a machine without CUDA: one line saying so, exit code 3, at once.

Why tested here: the script is run when a GPU is lent, for minutes that cannot be wasted; on
every other machine (CI, a laptop) it must say in one line that there is nothing to do, not
start the benchmarks or fail somewhere in the middle.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("hidden", ["", "-1", None])  # None: not hidden, torch is asked (no CUDA here)
def test_without_cuda_it_says_so_in_one_line_and_exits_3(tmp_path, hidden):
    env = {**os.environ, "GPU_CHECK_OUT": str(tmp_path / "out")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if hidden is not None:
        env["CUDA_VISIBLE_DEVICES"] = hidden
    elif __import__("torch").cuda.is_available():
        pytest.skip("a CUDA device is visible: the script would run the check")
    start = time.monotonic()
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    took = time.monotonic() - start
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode == 3, res.stdout + res.stderr
    assert len(lines) == 1 and "no CUDA device" in lines[0], lines
    assert took < 30
    assert not (tmp_path / "out").exists()  # nothing was started
