"""Every Python example of docs/api.md runs, in order, in an empty folder."""
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_api_examples_run(tmp_path, monkeypatch, cache_dir, capsys):
    monkeypatch.chdir(tmp_path)
    code = blocks()
    assert len(code) == 5
    namespace: dict = {}
    for block in code:
        exec(compile(block, str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "effective epochs" in out and "samples this epoch" in out and "samples trained per epoch" in out
    steps = namespace["steps"]  # the queue example: full batches of 64 in its select epochs, the rest last
    assert steps[:4] == [64] * 4 and steps.count(64) >= len(steps) - 3
    trained = namespace["trained"]  # the InfoBatch example pruned (its own asserts ran too)
    assert trained[0] == 256 and min(trained[1:7]) < 230
    assert (tmp_path / "runs" / "api-demo" / "metrics.json").exists()
    assert namespace["probs"].shape == (1, 5) and abs(namespace["probs"].sum() - 1) < 1e-5
    assert namespace["out"]["maps"].shape == (1, 200) and 0 <= namespace["out"]["focus"][0] <= 1
