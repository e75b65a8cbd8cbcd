"""wfdb-folder: lead names and order checked against the first record; labels that contain a
separator are never split silently."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_wfdb import synthetic_ecg, write_wfdb_record

from erts.config import DataConfig
from erts.data import wfdb_folder
from erts.data.preprocess import standardize
from erts.data.wfdb_folder import split_labels
from erts.data.wfdb_io import read_wfdb
from erts.errors import DataError


def load(root, tmp_path, **kw):
    return wfdb_folder.load(DataConfig(dataset="wfdb-folder", root=str(root), cache_dir=str(tmp_path / "cache"), **kw))


def write(root, leads: dict[str, list[str]], labels: dict[str, str] | None = None, fs: float = 250.0):
    """One 3-lead record per entry, with the given lead names; labels.csv via pandas (CSV quoting)."""
    for i, (rid, names) in enumerate(leads.items()):
        sig, _ = synthetic_ecg(500, fs, n_leads=len(names), seed=i)
        write_wfdb_record(root, rid, sig * (1 + np.arange(len(names)))[:, None], fs, names)
    labels = labels or {rid: "ab"[i % 2] for i, rid in enumerate(leads)}
    pd.DataFrame({"record": list(labels), "label": list(labels.values())}).to_csv(root / "labels.csv", index=False)
    return root


def test_leads_are_checked_against_the_first_record(tmp_path):
    ref = ["I", "II", "V1"]
    leads = {f"r{i}": ref for i in range(6)}
    leads["r6"] = ["i", "ii", "v1"]          # same names, other case: kept as is
    leads["r7"] = ["V1", "I", "II"]          # same names, other order: put in the first record's order
    leads["r8"] = ["I", "II", "V2"]          # another lead: skipped, named
    root = write(tmp_path / "ecg", leads)
    rs = load(root, tmp_path)
    ids = list(rs.record_ids)
    assert "r8" not in ids and rs.lead_names == ref
    (reason,) = [why for rid, why in rs.skipped if rid == "r8"]
    assert reason.startswith("leads ['I', 'II', 'V2'] do not match the first record's ['I', 'II', 'V1']")
    x, _, names = read_wfdb(root / "r7")
    assert names == ["V1", "I", "II"]
    np.testing.assert_allclose(rs.signals[ids.index("r7")], standardize(x[[1, 2, 0]]), atol=1e-5)
    x6, _, _ = read_wfdb(root / "r6")
    np.testing.assert_allclose(rs.signals[ids.index("r6")], standardize(x6), atol=1e-5)


def test_lead_mismatch_fails_with_bad_records_fail(tmp_path):
    root = write(tmp_path / "ecg", {"a": ["I", "II"], "b": ["I", "aVR"]})
    with pytest.raises(DataError, match=r"^b: leads \['I', 'aVR'\] do not match the first record's \['I', 'II'\]"):
        load(root, tmp_path, bad_records="fail")


@pytest.mark.parametrize("field, labels", [
    ("AF", ["AF"]),
    ("AF;PVC", ["AF", "PVC"]),
    ("AF, PVC", ["AF", "PVC"]),
    ('"AV block, 1st degree"', ["AV block, 1st degree"]),
    ('"AV block, 1st degree";AF', ["AV block, 1st degree", "AF"]),
    ('AF;"a;b"', ["AF", "a;b"]),
    ("", []),
    ('"AF', None),
])
def test_split_labels(field, labels):
    assert split_labels(field) == labels


def test_quoted_label_with_a_comma_is_one_class(tmp_path):
    leads = {f"r{i}": ["I"] for i in range(8)}
    labels = {f"r{i}": ['"AV block, 1st degree"', "normal", '"AV block, 1st degree";normal', "normal"][i % 4]
              for i in range(8)}
    root = write(tmp_path / "ecg", leads, labels)
    text = (root / "labels.csv").read_text()
    assert 'r0,"""AV block, 1st degree"""' in text  # what the CSV file holds: quotes doubled
    rs = load(root, tmp_path)
    assert rs.class_names == ["AV block, 1st degree", "normal"] and rs.multilabel
    row = list(rs.record_ids).index("r2")
    np.testing.assert_array_equal(rs.labels[row], [1, 1])


def test_unbalanced_quote_is_an_error(tmp_path):
    root = write(tmp_path / "ecg", {"r0": ["I"], "r1": ["I"]}, {"r0": '"AF', "r1": "AF"})
    with pytest.raises(DataError, match=r"labels.csv: unbalanced double quote in the label of record\(s\) r0"):
        load(root, tmp_path)
