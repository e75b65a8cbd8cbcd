"""benchmarks/rhofull_compare.py: step 4's rho-loss paired with step 3's runs of the same seeds."""
from __future__ import annotations

import numpy as np

from conftest import load_benchmark

Y = np.arange(200) % 4  # four balanced classes


def write_run(runs, name: str, correct: float, seed: int) -> None:
    """A run folder whose test predictions get the first ``correct`` share of each class right."""
    d = runs / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    right = (np.arange(len(Y)) // 4) < correct * len(Y) / 4
    pred = np.where(right, Y, (Y + 1 + rng.integers(0, 3, len(Y))) % 4)
    np.savez(d / "predictions_test.npz", record_ids=np.arange(len(Y)).astype(str), y_true=Y,
             probs=np.eye(4)[pred] * 0.9 + 0.025)


def test_pairs_each_partner_by_seed_and_tells_them_apart(tmp_path):
    rc = load_benchmark("rhofull_compare")
    step3, step4 = tmp_path / "sym20" / "runs", tmp_path / "rhofull-sym20" / "runs"
    for seed in (0, 1):
        write_run(step4, f"seed={seed},method=rho-loss", 0.8, seed)
        write_run(step3, f"seed={seed},method=rho-loss", 0.8, seed)  # the same predictions: no difference
        write_run(step3, f"seed={seed},method=full", 1.0, seed)
        write_run(step3, f"seed={seed},method=random,budget=0.74", 0.5, seed)
    write_run(step3, "seed=0,method=full,budget=0.74", 0.8, 9)  # one seed only
    (step4 / "seed=2,method=rho-loss").mkdir()  # unfinished: no predictions, left out

    full_runs = rc.run_dirs(step3, r"method=full")
    assert [d.name for d in full_runs.values()] == ["seed=0,method=full", "seed=1,method=full"]  # not the budget run
    lines = rc.setting_lines(tmp_path, "", "sym20", n_boot=200)
    table = [line for line in lines if line.startswith("| ")][1:]  # the rows below the header
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table if not line.startswith("|---")}
    assert len(rows) == 4
    assert rows["rho-loss, 6-sample steps (step 3)"].split(" | ")[1].startswith("+0.000 [+0.000, +0.000]")
    full = float(rows["full"].split(" | ")[1].split()[0])
    random = float(rows["random@cheapest"].split(" | ")[1].split()[0])
    assert full < -0.1 and random > 0.1  # 80 % right against 100 % and 50 % right
    assert rows["full@cheapest"].split(" | ")[2] == "1"
    assert all(row.split(" | ")[2] == "2" for name, row in rows.items() if name != "full@cheapest")


def test_a_setting_without_runs_says_so(tmp_path):
    rc = load_benchmark("rhofull_compare")
    assert "no pair finished yet" in rc.setting_lines(tmp_path, "", "pair20", n_boot=10)
