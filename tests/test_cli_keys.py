"""`erts train --keys` and `--print-config`: every key with its meaning (the comments next to the fields
in erts/config.py) and allowed values, the resolved config, and fast: no torch on that path."""
from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import yaml

from erts.cli.main import main
from erts.config import LEAVES, config_from_dict, load_config

CONFIG_PY = Path(__file__).resolve().parents[1] / "src" / "erts" / "config.py"


def keys_output(capsys, *args: str) -> str:
    assert main(["train", "--keys", *args]) == 0
    return capsys.readouterr().out


def entries(text: str) -> dict[str, str]:
    """key -> its whole entry (value line and the indented lines under it), whitespace collapsed."""
    out, key = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (\w+) = ", line)
        if m:
            key = m.group(1)
            out[key] = line
        elif line.startswith("      ") and key:
            out[key] += " " + line.strip()
        else:
            key = None
    return {k: " ".join(v.split()) for k, v in out.items()}


def source_comments() -> dict[str, list[str]]:
    """Read independently of erts.config.field_docs: per field line of the section dataclasses, its own
    trailing comment and the comment-only lines right above it."""
    lines = CONFIG_PY.read_text().splitlines()
    start, end = lines.index("class DataConfig:") - 1, lines.index("class Config:")
    out: dict[str, list[str]] = {}
    for i in range(start, end):
        m = re.match(r"^    (\w+): [^=]+= .*?(?:  # (.*))?$", lines[i])
        if not m:
            continue
        found, j = [], i - 1
        while lines[j].strip().startswith("#"):
            found.insert(0, lines[j].strip()[1:].strip())
            j -= 1
        if m.group(2):
            found.append(m.group(2).strip())
        out[m.group(1)] = found
    return out


def test_every_key_says_what_it_means_and_what_it_accepts(capsys):
    got = entries(keys_output(capsys))
    assert set(got) == set(LEAVES)
    comments = source_comments()
    assert set(comments) == set(LEAVES)
    for key, texts in comments.items():
        assert texts, f"{key} has no comment in config.py"
        for t in texts:  # no comment lost
            assert " ".join(t.split()) in got[key], (key, t)
        assert "accepts: " in got[key]
    assert got["granularity"].startswith("granularity = auto") and "one of 'auto', 'batch', 'epoch'" in got["granularity"]
    assert "erts-dbpd" in got["method"] and "el2n" in got["method"]
    assert "float or null" in got["crop_s"] and "int or null" in got["warmup_epochs"]
    assert "cinc2017" in got["dataset"] and "wfdb-folder" in got["dataset"]


def test_model_names_read_without_torch_match_the_registry(capsys):
    from erts.models import list_models

    got = entries(keys_output(capsys))["model"]
    assert ("one of " + ", ".join(list_models())) in got


def test_keys_show_the_values_the_given_settings_resolve_to(capsys):
    got = entries(keys_output(capsys, "method=erts-dbpd", "selection.phi=0.5"))
    assert got["method"].startswith("method = erts-dbpd (default full)")
    assert got["phi"].startswith("phi = 0.5 (default 0.7)")
    assert got["tau"].startswith("tau = 0.3 accepts")  # unchanged: no default shown


def test_print_config_is_the_resolved_config_as_loadable_yaml(capsys, tmp_path):
    assert main(["train", "--print-config", "method=erts-dbpd", "epochs=8", "phi=0.6"]) == 0
    text = capsys.readouterr().out
    # the published proportions of 8 epochs: warm-up ceil(0.4) = 1 epoch (0), ERTS from ceil(0.64) = 1 but
    # after one plain select epoch (2), revision from ceil(4.0) = 4
    assert text.splitlines()[0] == "# schedule: warm-up 0, select 1-3, ERTS 2-3, revision 4-7"
    cfg = config_from_dict(yaml.safe_load(text))
    assert (cfg.selection.method, cfg.train.epochs, cfg.selection.phi) == ("erts-dbpd", 8, 0.6)
    assert cfg == load_config(overrides=["method=erts-dbpd", "epochs=8", "phi=0.6"])
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert load_config(f) == cfg  # what it prints is a config file erts train --config reads back


def test_keys_errors_are_one_line(capsys):
    assert main(["train", "--print-config", "phii=1"]) == 2
    assert "unknown config key 'phii'" in capsys.readouterr().err


def test_keys_and_print_config_import_no_torch_and_answer_fast():
    code = ("import sys; from erts.cli.main import main; "
            "assert main(['train', '--keys']) == 0; assert main(['train', '--print-config', 'epochs=5']) == 0; "
            "sys.stdout.flush(); assert 'torch' not in sys.modules, 'torch was imported'; "
            "assert 'pandas' not in sys.modules, 'pandas was imported'")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 2.0, f"--keys and --print-config took {cpu:.2f} s of CPU"  # CPU time: immune to a busy machine
