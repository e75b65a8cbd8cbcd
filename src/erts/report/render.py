"""Rendering a Report twice: one self-contained HTML page (PNGs embedded) and Markdown (PNGs beside it)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from erts.report.format import Report, slug


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#fafafa}
figure{margin:1.2em 0}img{max-width:100%}figcaption{color:#555;font-size:.9em}nav a{margin-right:1em}
.warnings{background:#fff4e5;border:1px solid #f0b429;padding:.5em 1em;margin:1em 0}"""


def _anchor(heading: str) -> str:
    return slug(heading.lower())


def render_html(rep: Report) -> str:
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(rep.title)}</title>"
           f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(rep.title)}</h1>",
           f"<p>{html.escape(rep.intro)}</p>"]
    if rep.warnings:
        out.append("<div class='warnings' id='warnings'><strong>Warnings</strong><ul>"
                   + "".join(f"<li>{html.escape(w)}</li>" for w in rep.warnings) + "</ul></div>")
    out += ["<nav>" + "".join(f"<a href='#{_anchor(s.heading)}'>{html.escape(s.heading)}</a>" for s in rep.sections)
           + "</nav>"]
    for s in rep.sections:
        out.append(f"<h2 id='{_anchor(s.heading)}'>{html.escape(s.heading)}</h2>")
        for b in s.blocks:
            if b[0] == "p":
                out.append(f"<p>{html.escape(b[1])}</p>")
            elif b[0] == "table":
                out.append(b[1].to_html(index=False, table_id=b[2], border=0, escape=True))
            else:
                _, name, png, caption = b
                data = base64.b64encode(png).decode("ascii")
                out.append(f"<figure id='{name}'><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(caption)}\">"
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def md_table(df: pd.DataFrame) -> str:
    cells = [[str(c).replace("|", "\\|") for c in row] for row in df.astype(str).to_numpy()]
    head = [str(c).replace("|", "\\|") for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def render_markdown(rep: Report, files_dir: Path) -> str:
    """Markdown text; figures are written to files_dir and linked relatively. The folder is the
    report's own: figures of an earlier render that this one does not draw (e.g. the suspects of
    another ranking) are removed, so it holds what the Markdown shows and nothing stale."""
    files_dir.mkdir(parents=True, exist_ok=True)
    drawn = {f"{b[1]}.png" for s in rep.sections for b in s.blocks if b[0] not in ("p", "table")}
    for old in files_dir.glob("*.png"):
        if old.name not in drawn:
            old.unlink()
    out = [f"# {rep.title}", "", rep.intro, ""]
    out += [f"> **Warning:** {w}" + ("\n>" if i < len(rep.warnings) - 1 else "") for i, w in enumerate(rep.warnings)]
    out += [""] if rep.warnings else []
    for s in rep.sections:
        out += [f"## {s.heading}", ""]
        for b in s.blocks:
            if b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                out += [md_table(b[1]), ""]
            else:
                _, name, png, caption = b
                (files_dir / f"{name}.png").write_bytes(png)
                out += [f"![{name}]({files_dir.name}/{name}.png)", "", f"*{caption}*", ""]
    return "\n".join(out)
