"""`erts report DIR`: one self-contained report.html plus report.md for a run or a sweep folder.

The report is assembled as a list of sections holding paragraphs, tables and
figures (format.py), filled by the sweep or the run report (sweep.py, run.py,
from tables.py, dropping.py, examples.py and provenance.py), then rendered twice
(render.py): HTML with every PNG embedded as base64 (one file to mail or archive,
no external assets) and Markdown with the PNGs saved next to it in
``report_files/``. A section whose data is absent says why instead of
disappearing, so a missing analysis is never mistaken for an empty one.

The names of those modules that callers used from here stay importable from here.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# the names below are re-exported (noqa: F401): callers and tests import them from erts.report.build
from erts.report.dropping import (FOCUS_SAMPLE, focus_verdict, kept_curves,  # noqa: F401
                                  selection_sections, with_label_noise)
from erts.report.examples import add_examples, pick_example_run, pick_examples  # noqa: F401
from erts.report.folders import is_run_dir, is_sweep_dir, read_log, read_metrics  # noqa: F401
from erts.report.format import (METRIC_NAMES, Report, Section, config_label, fmt,  # noqa: F401
                                fmt_metric, fmt_p, fmt_sci, metric_name)
from erts.report.provenance import (PER_RUN_SETTINGS, provenance_rows, provenance_section,  # noqa: F401
                                    read_config, run_config_section, sweep_config_section)
from erts.report.render import CSS, md_table, render_html, render_markdown  # noqa: F401
from erts.report.run import RUN_SECTIONS, build_run_report  # noqa: F401
from erts.report.sweep import SWEEP_SECTIONS, build_sweep_report, config_columns, varying  # noqa: F401
from erts.report.tables import (BASELINE, MIN_SEEDS, TIME_SPREAD_LIMIT, comparison_section,  # noqa: F401
                                comparisons_table, cost_table, forest_figure, pareto_input, pareto_time,
                                results_table, summary_warnings, sweep_summary, time_spread, verdict)



def print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def build_report(directory: str | Path, *, out_dir: str | Path | None = None, n_boot: int = 2000,
                 examples: int = 2, max_leads: int = 3, metric: str = "auto",
                 warn: Callable[[str], None] | None = print_warning) -> tuple[Path, Path]:
    """Writes report.html and report.md (+ report_files/) for a run or sweep folder; returns both paths.

    ``metric``: what a sweep report compares (a results.csv column such as ``test_macro_auroc``;
    ``auto``: macro-AUROC for multi-label runs, else macro-F1).

    Each of the report's warnings (too few seeds, noisy wall clock) is also passed
    to ``warn`` (default: printed to stderr, so ``erts report`` shows them).
    """
    d = Path(directory)
    if is_sweep_dir(d):
        rep = build_sweep_report(d, examples=examples, max_leads=max_leads, n_boot=n_boot, metric=metric)
    elif is_run_dir(d):
        rep = build_run_report(d, n_boot=n_boot, examples=examples, max_leads=max_leads)
    else:
        raise FileNotFoundError(f"{d} is neither a run folder (metrics.json, log.csv) nor a sweep folder "
                                "(results.csv)")
    out = Path(out_dir) if out_dir else d
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(render_html(rep), encoding="utf-8")
    md_path.write_text(render_markdown(rep, out / "report_files"), encoding="utf-8")
    for w in rep.warnings if warn else ():
        warn(w)
    return html_path, md_path
