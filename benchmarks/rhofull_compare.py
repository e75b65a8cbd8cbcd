"""RHO-LOSS stepping on full batches (step 4, `noise-cinc2017-bf16-rhofull`) against step 3's runs.

Step 4 reran only `rho-loss`, with `update_batches=full`; its partners live in step 3's sweep folders:
`rho-loss` as step 3 ran it (each batch's kept samples a step), `full`, and the equal-budget controls
(`full` and `random` at the cheapest configuration's share). Each difference in test macro-F1 is paired
over the test records and the seeds (erts.eval.paired: one draw of the records for both runs of every
drawn seed), with Holm over the comparisons of a setting.

    python benchmarks/rhofull_compare.py                       # the published runs, into compare-rhofull.md
    python benchmarks/rhofull_compare.py --root ~/erts-sweeps --prefix noise-cinc2017-bf16-
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from erts.eval.paired import paired_runs
from erts.fileio import write_text

SETTINGS = ("sym20", "pair20", "original-train")
MEASURED = Path(__file__).resolve().parent / "measured" / "noise-cinc2017-bf16"
FULL_BATCHES = "rho-loss, full batches"


def run_dirs(runs: Path, pattern: str) -> dict[int, Path]:
    """seed -> finished run folder (test predictions written) whose name matches ``pattern`` after `seed=N,`."""
    found = {}
    for d in sorted(runs.glob("seed=*")):
        m = re.fullmatch(r"seed=(\d+),(.*)", d.name)
        if m and re.fullmatch(pattern, m.group(2)) and (d / "predictions_test.npz").exists():
            found[int(m.group(1))] = d
    return found


def setting_lines(root: Path, prefix: str, setting: str, n_boot: int) -> list[str]:
    step3, step4 = root / f"{prefix}{setting}" / "runs", root / f"{prefix}rhofull-{setting}" / "runs"
    arms = {
        FULL_BATCHES: run_dirs(step4, r"method=rho-loss"),
        "rho-loss, 6-sample steps (step 3)": run_dirs(step3, r"method=rho-loss"),
        "full": run_dirs(step3, r"method=full"),
        "full@cheapest": run_dirs(step3, r"method=full,budget=[\d.]+"),
        "random@cheapest": run_dirs(step3, r"method=random,budget=[\d.]+"),
    }
    runs = pd.DataFrame([{"method": arm, "seed": seed, "run_dir": str(d)}
                         for arm, dirs in arms.items() for seed, d in dirs.items()],
                        columns=["method", "seed", "run_dir"])
    pairs = pd.DataFrame({"method": FULL_BATCHES, "baseline": [arm for arm in arms if arm != FULL_BATCHES]})
    res = paired_runs(pairs, runs, "test_macro_f1", n_boot=n_boot)  # Holm over the setting's comparisons
    if res.empty:
        return [f"## {setting}", "", "no pair finished yet", ""]
    out = [f"## {setting}", "", f"| {FULL_BATCHES}, against | difference [95 % CI] | seeds | p | p(Holm) |",
           "|---|---|---|---|---|"]
    out += [f"| {r.baseline} | {r.diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] | {r.n_seeds} | "
            f"{r.p:.3f} | {r.p_holm:.3f} |" for r in res.itertuples()]
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=MEASURED, help="the folder holding the sweep folders")
    ap.add_argument("--prefix", default="", help="the sweep folders' common prefix (the published ones have none)")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None, help="markdown file (default: <root>/compare-rhofull.md)")
    args = ap.parse_args(argv)
    lines = ["# RHO-LOSS on full batches against step 3's runs (test macro-F1, record-paired)", "",
             "Two-level bootstrap (the test records and the seeds drawn together, "
             f"{args.n_boot} draws; erts.eval.paired); Holm within each setting.", ""]
    for setting in SETTINGS:
        lines += setting_lines(args.root.expanduser(), args.prefix, setting, args.n_boot)
    text = "\n".join(lines)
    write_text(args.out or args.root.expanduser() / "compare-rhofull.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
