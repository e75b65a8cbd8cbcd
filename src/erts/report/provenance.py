"""The configuration and provenance sections: the runs' resolved settings and what produced them.

Why apart: a number in a report is only as good as knowing which settings and
which erts (version, git commit, command line) made it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from erts.report.format import Section
from erts.train.runio import provenance, read_provenance

PER_RUN_SETTINGS = ("train.name", "train.out_dir", "train.seed")  # differ between runs by construction


def read_config(run_dir: Path) -> dict | None:
    """A run's config.yaml flattened to dotted keys ('selection.phi': 0.7); None when missing."""
    p = run_dir / "config.yaml"
    if not p.exists():
        return None
    raw = yaml.safe_load(p.read_text()) or {}
    flat = {}
    for section, values in raw.items():
        if isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            flat[str(section)] = values
    return flat


def _cell(v) -> str:
    """A setting's value as the YAML file spells it (null, true, [0.5, 40])."""
    return json.dumps(v) if v is None or isinstance(v, (bool, list, dict)) else str(v)


def sweep_config_section(s: Section, groups: list[tuple[str, list[Path]]]) -> None:
    """The runs' resolved config.yaml: settings shared by every run once, then the varying ones per configuration."""
    cfgs = [(label, run, c) for label, runs in groups for run in runs if (c := read_config(run)) is not None]
    missing = sum(len(runs) for _, runs in groups) - len(cfgs)
    if not cfgs:
        s.text("No run folder has a config.yaml, so the resolved configuration cannot be shown.")
        return
    all_keys = list(dict.fromkeys(k for _, _, c in cfgs for k in c))
    values = {k: [_cell(c.get(k, "(absent)")) for _, _, c in cfgs] for k in all_keys}
    shared = [k for k in all_keys if k not in PER_RUN_SETTINGS and len(set(values[k])) == 1]
    varying = [k for k in all_keys if k not in PER_RUN_SETTINGS and k not in shared]
    s.text(f"The resolved configuration of the runs (config.yaml in each run folder; {len(cfgs)} runs"
           + (f", {missing} without a config.yaml" if missing else "") + "). Settings every run shares are listed "
           "once; the settings that differ follow per configuration. Run name, output folder and seed differ "
           "between runs by construction and are left out.")
    s.table(pd.DataFrame({"setting": shared, "value (every run)": [values[k][0] for k in shared]}), "config_shared")
    if not varying:
        s.text("No setting differs between the runs except name, output folder and seed.")
        return
    rows = []
    for label in dict.fromkeys(label for label, _, _ in cfgs):
        mine = [c for lab, _, c in cfgs if lab == label]
        row = {"configuration": label}
        for k in varying:
            vals = list(dict.fromkeys(_cell(c.get(k, "(absent)")) for c in mine))
            row[k] = vals[0] if len(vals) == 1 else " | ".join(vals) + " (differs between seeds)"
        rows.append(row)
    s.table(pd.DataFrame(rows), "config_varying")


def run_config_section(s: Section, run_dir: Path) -> None:
    c = read_config(run_dir)
    if c is None:
        s.text(f"No config.yaml in {run_dir}, so the resolved configuration cannot be shown.")
        return
    s.text("The run's resolved configuration (config.yaml in the run folder): every setting, defaults included.")
    s.table(pd.DataFrame({"setting": list(c), "value": [_cell(v) for v in c.values()]}), "config")


def _command(argv) -> str:
    import shlex

    return shlex.join(map(str, argv)) if isinstance(argv, list) else "-"


def provenance_rows(run_dir: Path) -> list[dict]:
    """The run's provenance (run.json): who started it, then each resume; one row each."""
    p = read_provenance(run_dir)
    if p is None:
        return [{"run": run_dir.name, "what": "-", "erts version": "-", "git commit": "-",
                 "command": "not recorded (a run written before erts recorded its provenance)"}]
    entries = ([("started", p)] if "erts_version" in p else []) + [("resumed", r) for r in p.get("resumes", [])]
    return [{"run": run_dir.name, "what": f"{what} {e.get('time', '')}".strip(),
             "erts version": e.get("erts_version", "-"),
             "git commit": e.get("git_commit") or "not a git checkout", "command": _command(e.get("command"))}
            for what, e in entries]


def provenance_section(s: Section, runs: list[Path]) -> None:
    """What produced the runs (erts version, git commit, command line; run.json in each run folder)
    and this report."""
    s.text("The erts version and git commit each run was trained with, and its command line (run.json in the "
           "run folder; a resumed run lists each resume). A commit ending in +dirty had uncommitted changes "
           "to tracked files; 'not a git checkout' is an installed erts.")
    rows = [r for run in runs for r in provenance_rows(run)]
    s.table(pd.DataFrame(rows), "provenance")
    versions = {(r["erts version"], r["git commit"]) for r in rows if r["erts version"] != "-"}
    if len(versions) > 1:
        s.text(f"The runs were trained by {len(versions)} different erts versions or commits.")
    me = provenance()
    s.text(f"This report: erts {me['erts_version']}, git commit {me['git_commit'] or 'none (not a git checkout)'}, "
           f"command: {_command(me['command'])}, built {me['time']}.")
