"""Reports: run and sweep folders rendered as one self-contained HTML page plus Markdown."""
from erts.report.build import build_report
from erts.report.selection import load_selection_log

__all__ = ["build_report", "load_selection_log"]
