"""Writes each finished run's ``selection_counts.npz``: what the drop ratios need, without the selection logs.

A 30-epoch CinC run's selection logs take about 0.8 MB in git, its counts 20-40 KB
(``erts.report.reliability.write_counts``); ``erts.report.reliability`` and noise_filter.py's summary
read the counts where a published run has no logs. publish.sh ``--selection`` calls this.
Usage: python benchmarks/selection_counts.py SWEEP_DIR DEST_DIR
  writes DEST_DIR/runs/<run>/selection_counts.npz for each finished run of SWEEP_DIR/runs/ with
  selection logs; a file newer than its run's metrics.json is kept (a finished run never changes).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from erts.report.reliability import COUNTS_FILE, write_counts


def publish_counts(sweep: Path, dest: Path) -> list[Path]:
    """The counts files written (or kept) under ``dest/runs``."""
    out = []
    for run in sorted((sweep / "runs").iterdir()) if (sweep / "runs").is_dir() else []:
        metrics = run / "metrics.json"
        if not metrics.exists() or not (run / "selection").is_dir():
            continue
        target = dest / "runs" / run.name
        done = target / COUNTS_FILE
        if done.exists() and done.stat().st_mtime >= metrics.stat().st_mtime:
            out.append(done)
            continue
        target.mkdir(parents=True, exist_ok=True)
        written = write_counts(run, target)
        if written is not None:
            out.append(written)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path)
    ap.add_argument("dest", type=Path)
    args = ap.parse_args()
    print(f"selection counts: {len(publish_counts(args.sweep, args.dest))} runs")


if __name__ == "__main__":
    main()
