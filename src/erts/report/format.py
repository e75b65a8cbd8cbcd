"""The report as data (sections of paragraphs, tables and figures) and how its cells are written.

Why apart from the builders: every section, table and renderer uses the same
document model and the same number formatting ('-' for missing, 'n/a' for an
undefined metric), so they are defined once, below everything that fills them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from erts.report import plots


def slug(s: str) -> str:
    """A heading or record name as a file name and HTML id."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", s).strip("_")


@dataclass
class Section:
    heading: str
    blocks: list[tuple] = field(default_factory=list)  # ("p", text) | ("table", df, id) | ("fig", name, png, caption)

    def text(self, s: str) -> None:
        self.blocks.append(("p", s))

    def table(self, df: pd.DataFrame, table_id: str) -> None:
        self.blocks.append(("table", df, table_id))

    def figure(self, name: str, fig, caption: str) -> None:
        self.blocks.append(("fig", slug(name), plots.to_png(fig), caption))


@dataclass
class Report:
    title: str
    intro: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)  # shown on top of the report and printed by build_report


def fmt(v, digits: int = 4) -> str:
    """Table cell text: fixed digits for floats, '-' for missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}"
    return str(v)


METRIC_NAMES = {"macro_f1": "macro-F1", "macro_auroc": "macro-AUROC", "f1_nao": "F1 over N, A, O (CinC 2017 score)"}


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key.replace("_", " "))


def fmt_metric(v, digits: int = 4) -> str:
    """A metric value; NaN is an undefined metric (e.g. F1 of a class absent from the split): 'n/a'."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "n/a"
    return fmt(v, digits)


def fmt_p(p: float) -> str:
    return "-" if p is None or math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def fmt_sci(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def config_label(row, keys: list[str]) -> str:
    """'erts-dbpd' or 'erts-dbpd, model=resnet18_1d' (method first, then other varying keys)."""
    parts = [str(row["method"])] if "method" in keys else []
    parts += [f"{k}={row[k]}" for k in keys if k != "method"]
    return ", ".join(parts)
