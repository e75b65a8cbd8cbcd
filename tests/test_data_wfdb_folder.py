"""A user's WFDB folder + labels.csv: single- and multi-label, split column, classes.txt, defaults."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_wfdb import synthetic_ecg, write_wfdb_folder, write_wfdb_record

from erts.config import DataConfig
from erts.data import wfdb_folder
from erts.data.preprocess import standardize
from erts.data.wfdb_io import read_wfdb


def load(root, tmp_path, **kw):
    return wfdb_folder.load(DataConfig(dataset="wfdb-folder", root=str(root), cache_dir=str(tmp_path / "cache"), **kw))


def test_single_label_folder_with_subfolders(tmp_path):
    labels = {f"rec{i:02d}": ["afib", "normal", "pvc"][i % 3] for i in range(30)}
    labels.update({"site2/rec99": "normal"})
    root = write_wfdb_folder(tmp_path / "ecg", labels, fs=250.0, seconds=8.0)
    rs = load(root, tmp_path)
    assert rs.class_names == ["afib", "normal", "pvc"] and not rs.multilabel
    assert rs.signals.shape == (31, 2, 2000) and rs.fs == 250.0 and rs.lead_names == ["L0", "L1"]
    assert dict(zip(rs.record_ids, (rs.class_names[k] for k in rs.labels))) == labels
    assert list(rs.meta["label"]) == [labels[r] for r in rs.record_ids]
    x, _, _ = read_wfdb(root / "rec05")
    np.testing.assert_allclose(rs.signals[list(rs.record_ids).index("rec05")], standardize(x), atol=1e-5)
    assert set(rs.split) == {"train", "val", "test"}
    assert rs.class_counts("test") == {"afib": 2, "normal": 2, "pvc": 2}  # stratified: round(10 * 0.15) each
    assert pd.read_csv(rs.split_path)["split"].tolist() == list(rs.split)


def test_multilabel_and_split_column(tmp_path):
    labels = {f"r{i}": ("A;B" if i % 4 == 0 else "B,C" if i % 4 == 1 else "A") for i in range(12)}
    splits = {f"r{i}": ["train", "train", "val", "test"][i % 4] for i in range(12)}
    root = write_wfdb_folder(tmp_path / "ml", labels, splits=splits, n_leads=1)
    rs = load(root, tmp_path)
    assert rs.multilabel and rs.class_names == ["A", "B", "C"] and rs.labels.shape == (12, 3)
    row = list(rs.record_ids).index("r1")
    np.testing.assert_array_equal(rs.labels[row], [0, 1, 1])
    assert list(rs.split) == [splits[r] for r in rs.record_ids]
    assert "split" not in rs.meta.columns


def test_multilabel_stratified_split_by_rarest_label(tmp_path):
    labels = {f"r{i:02d}": ("A;R" if i < 8 else "A") for i in range(40)}
    root = write_wfdb_folder(tmp_path / "ml2", labels, n_leads=1, seconds=2.0)
    rs = load(root, tmp_path)
    rare = rs.labels[:, rs.class_names.index("R")] > 0
    assert {s: int((rare & (rs.split == s)).sum()) for s in ("train", "val", "test")} == {"train": 6, "val": 1, "test": 1}


def test_classes_file_orders_classes(tmp_path):
    root = write_wfdb_folder(tmp_path / "c", {f"r{i}": "xy"[i % 2] for i in range(6)}, n_leads=1)
    (root / "classes.txt").write_text("y\nx\nz\n")
    rs = load(root, tmp_path)
    assert rs.class_names == ["y", "x", "z"] and rs.class_counts()["z"] == 0


def test_length_defaults_to_median_duration(tmp_path):
    root = write_wfdb_folder(tmp_path / "len", {f"r{i}": "a" for i in range(3)}, fs=100.0, seconds=6.0, n_leads=1)
    sig, _ = synthetic_ecg(1000, 100.0)
    write_wfdb_record(root, "r1", sig, 100.0, ["L0"])  # r1 now 10 s: median stays 6 s
    rs = load(root, tmp_path)
    assert rs.signals.shape == (3, 1, 600)
    assert load(root, tmp_path, length_s=8.0).signals.shape == (3, 1, 800)


def test_missing_labels_file_is_a_clear_error(tmp_path):
    (tmp_path / "nolabels").mkdir()
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        load(tmp_path / "nolabels", tmp_path)
    with pytest.raises(ValueError, match="root="):
        load(tmp_path / "does-not-exist", tmp_path)
