"""benchmarks/bf16_check.py trains a finished fp32 run's exact config in bf16 and judges it against the
fp32 run's bootstrap interval."""
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_overrides
from erts.config import load_config
from erts.eval.bootstrap import bootstrap_run
from erts.train.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bf16_check  # noqa: E402


def flat(path: Path) -> dict:
    return {f"{s}.{k}": v for s, section in yaml.safe_load(path.read_text()).items() if isinstance(section, dict)
            for k, v in section.items()}


def test_bf16_check_retrains_the_same_config_in_bf16_and_judges_it(cache_dir, tmp_path, monkeypatch, capsys, one_thread):
    train(load_config(overrides=tiny_overrides(cache_dir, tmp_path, name="r", epochs=2, method="dbpd")))
    fp32 = tmp_path / "r"
    monkeypatch.setattr(sys, "argv", ["bf16_check", str(fp32), "--out", str(tmp_path / "b"), "--n-boot", "200"])
    status = bf16_check.main()
    out = capsys.readouterr().out
    bf16 = tmp_path / "b" / "r-bf16"
    a, b = flat(fp32 / "config.yaml"), flat(bf16 / "config.yaml")
    assert b.pop("train.bf16") is True and a.pop("train.bf16") is False
    for k in ("train.name", "train.out_dir"):
        a.pop(k), b.pop(k)
    assert a == b  # every other setting as the fp32 run's
    ref = bootstrap_run(str(fp32 / "predictions_test.npz"), n_boot=200, seed=0)
    assert f"fp32 {ref['macro_f1']:.4f} [{ref['ci_low']:.4f}, {ref['ci_high']:.4f}]" in out
    new = bootstrap_run(str(bf16 / "predictions_test.npz"), n_boot=10, seed=0)["macro_f1"]
    inside = ref["ci_low"] <= new <= ref["ci_high"]
    assert (f"bf16 {new:.4f}  {'inside' if inside else 'OUTSIDE'}") in out
    assert status in (0, 1) and "training CPU s" in out
    monkeypatch.setattr(sys, "argv", ["bf16_check", str(bf16), "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="already trained in bf16"):
        bf16_check.main()
    # another fp32 run of the same name into the same --out: refused, never compared with the first's bf16 run
    train(load_config(overrides=tiny_overrides(cache_dir, tmp_path / "other", name="r", epochs=2, method="full")))
    monkeypatch.setattr(sys, "argv", ["bf16_check", str(tmp_path / "other" / "r"), "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="holds a bf16 run of other settings"):
        bf16_check.main()
