"""CinC 2017 loader: official layout (zip and folder), labels, label noise flag, preprocessing, split, cache."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA
from fixtures_wfdb import write_cinc2017, zip_folder

from erts.config import DataConfig
from erts.data import cinc2017
from erts.data.preprocess import standardize
from erts.data.wfdb_io import Source, read_challenge_mat

LABELS = {f"A{i:05d}": "NAO~"[i % 4] for i in range(1, 41)}
CHANGED = {"A00001": "N", "A00002": "~", "A00007": "N"}  # original label differs for these
SECONDS = {"A00003": 12.0, "A00004": 45.0, "A00005": 61.0}


@pytest.fixture(scope="module")
def cinc(tmp_path_factory):
    root = tmp_path_factory.mktemp("cinc")
    folder = write_cinc2017(root, LABELS, {**LABELS, **CHANGED}, seconds=SECONDS)
    return folder, zip_folder(folder, root / "training2017.zip")


def cfg_for(root, tmp_path, **kw) -> DataConfig:
    return DataConfig(dataset="cinc2017", root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def test_labels_meta_and_default_length(cinc, tmp_path):
    folder, zpath = cinc
    rs = cinc2017.load(cfg_for(zpath, tmp_path))
    assert rs.class_names == ["N", "A", "O", "~"] and rs.fs == 300.0 and rs.lead_names == ["ECG"]
    assert rs.signals.shape == (40, 1, 9000)  # 30 s default at 300 Hz
    ids = list(rs.record_ids)
    assert ids == sorted(LABELS)
    assert [rs.class_names[k] for k in rs.labels] == [LABELS[r] for r in ids]
    meta = rs.meta.set_index(pd.Index(ids))
    assert set(meta.index[meta["label_changed"]]) == set(CHANGED)
    assert meta.loc["A00001", "label_original"] == "N" and meta.loc["A00001", "label_current"] == "A"
    assert meta.loc["A00003", "length_s"] == pytest.approx(12.0)
    assert meta.loc["A00010", "length_s"] == pytest.approx(30.0)
    assert rs.skipped == []


def test_signals_are_standardised_mV_cropped_or_padded(cinc, tmp_path):
    folder, zpath = cinc
    rs = cinc2017.load(cfg_for(zpath, tmp_path))
    ids = list(rs.record_ids)
    for rid in ("A00003", "A00004", "A00010"):
        x, fs, _, _ = read_challenge_mat(folder / f"{rid}.hea")
        z = standardize(x)
        got = rs.signals[ids.index(rid)]
        if x.shape[1] < 9000:  # short record: the signal, then zeros
            np.testing.assert_allclose(got[:, :x.shape[1]], z, atol=1e-5)
            assert not got[:, x.shape[1]:].any()
        else:  # centre crop
            start = (x.shape[1] - 9000) // 2
            np.testing.assert_allclose(got, z[:, start:start + 9000], atol=1e-5)


def test_zip_and_folder_give_the_same_set(cinc, tmp_path):
    folder, zpath = cinc
    a = cinc2017.load(cfg_for(zpath, tmp_path))
    b = cinc2017.load(cfg_for(folder, tmp_path))  # the extracted training2017/ folder
    c = cinc2017.load(cfg_for(folder.parent, tmp_path))  # or the folder above it
    for other in (b, c):
        np.testing.assert_array_equal(a.signals, other.signals)
        np.testing.assert_array_equal(a.labels, other.labels)
        np.testing.assert_array_equal(a.split, other.split)


def test_original_labels(cinc, tmp_path):
    _, zpath = cinc
    rs = cinc2017.load(cfg_for(zpath, tmp_path, labels="original"))
    got = dict(zip(rs.record_ids, (rs.class_names[k] for k in rs.labels)))
    assert got == {**LABELS, **CHANGED}


def test_split_is_stratified_deterministic_and_written_down(cinc, tmp_path):
    _, zpath = cinc
    a = cinc2017.load(cfg_for(zpath, tmp_path, split_seed=3))
    b = cinc2017.load(cfg_for(zpath, tmp_path / "other", split_seed=3))
    c = cinc2017.load(cfg_for(zpath, tmp_path, split_seed=4))
    np.testing.assert_array_equal(a.split, b.split)
    assert (a.split != c.split).any()
    n_val = n_test = round(10 * 0.15)  # 10 records per class, 70/15/15 within each class
    assert a.class_counts("val") == a.class_counts("test") == {c: n_val for c in a.class_names}
    assert a.class_counts("train") == {c: 10 - n_val - n_test for c in a.class_names}
    written = pd.read_csv(a.split_path, dtype=str)
    assert list(written["record"]) == list(a.record_ids) and list(written["split"]) == list(a.split)


def test_cache_hit_skips_decoding_and_is_memory_mapped(cinc, tmp_path, monkeypatch):
    _, zpath = cinc
    first = cinc2017.load(cfg_for(zpath, tmp_path))
    monkeypatch.setattr(cinc2017, "build", lambda *a: pytest.fail("cache miss: build() called again"))
    again = cinc2017.load(cfg_for(zpath, tmp_path))
    assert isinstance(again.signals, np.memmap) and again.cache_path == first.cache_path
    np.testing.assert_array_equal(first.signals, again.signals)
    assert first.meta["label_changed"].tolist() == again.meta["label_changed"].tolist()


def test_resample_and_length_settings_change_the_cache_entry(cinc, tmp_path):
    _, zpath = cinc
    rs = cinc2017.load(cfg_for(zpath, tmp_path, fs=100.0, length_s=20.0))
    base = cinc2017.load(cfg_for(zpath, tmp_path))
    assert rs.signals.shape == (40, 1, 2000) and rs.fs == 100.0
    assert rs.cache_path != base.cache_path


def test_missing_root_and_label_file_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="root="):
        cinc2017.load(DataConfig(dataset="cinc2017", cache_dir=str(tmp_path)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="REFERENCE.csv"):
        cinc2017.load(cfg_for(tmp_path / "empty", tmp_path))


@pytest.mark.slow
def test_real_cinc2017_counts(tmp_path):
    zpath = SHARED_DATA / "training2017.zip"
    if not zpath.exists():
        pytest.skip(f"real data not present: {zpath}")
    rs = cinc2017.load(cfg_for(zpath, tmp_path))
    assert rs.class_counts() == {"N": 5050, "A": 738, "O": 2456, "~": 284}
    assert rs.skipped == [] and rs.signals.shape == (8528, 1, 9000)
    assert int(rs.meta["label_changed"].sum()) == 294
    assert rs.meta["length_s"].between(9.0, 61.0).all()
    with Source(zpath) as src:
        _, labels = cinc2017.read_labels(src)
    assert labels["label_original"].value_counts().to_dict() == {"N": 5154, "O": 2557, "A": 771, "~": 46}


# --- labels=original-train: train and val on the original labels, test on the current ones ----------------

def _labels_by_id(rs) -> dict[str, str]:
    return dict(zip(rs.record_ids, (rs.class_names[k] for k in rs.labels)))


def test_all_label_settings_share_one_split(cinc, tmp_path):
    """The split is stratified by the current label, whatever labels= says, so the test set is one."""
    _, zpath = cinc
    sets = {lab: cinc2017.load(cfg_for(zpath, tmp_path, labels=lab, split_seed=2))
            for lab in ("current", "original", "original-train")}
    base = sets["current"]
    for lab, rs in sets.items():
        assert list(rs.record_ids) == list(base.record_ids), lab
        np.testing.assert_array_equal(rs.split, base.split, err_msg=lab)
    assert len({rs.cache_path for rs in sets.values()}) == 3  # one cache entry per setting


def test_original_train_labels_train_val_original_test_current(cinc, tmp_path):
    _, zpath = cinc
    rs = cinc2017.load(cfg_for(zpath, tmp_path, labels="original-train"))
    got, split = _labels_by_id(rs), dict(zip(rs.record_ids, rs.split))
    original = {**LABELS, **CHANGED}
    for rid in LABELS:
        want = LABELS[rid] if split[rid] == "test" else original[rid]
        assert got[rid] == want, (rid, split[rid])
    # the ground-truth columns are the same as under labels=current
    meta = rs.meta.set_index(pd.Index(rs.record_ids))
    assert set(meta.index[meta["label_changed"]]) == set(CHANGED)
    assert (meta["label_current"] == pd.Series(LABELS)).all()


def test_original_train_missing_original_label(tmp_path):
    """Train/val records without an original label are skipped; test records do not need one."""
    labels = {f"A{i:05d}": "NAO~"[i % 4] for i in range(1, 41)}
    root = write_cinc2017(tmp_path / "src", labels, {}, seconds={r: 9.0 for r in labels})
    cur = cinc2017.load(cfg_for(root, tmp_path))
    split = dict(zip(cur.record_ids, cur.split))
    missing = ["A00001", "A00002", "A00003", "A00004", "A00005", "A00006", "A00007", "A00008"]
    orig = {r: lab for r, lab in labels.items() if r not in missing}
    (root / "REFERENCE-original.csv").write_text("".join(f"{r},{lab}\n" for r, lab in sorted(orig.items())))
    rs = cinc2017.load(cfg_for(root, tmp_path, labels="original-train"))
    dropped = sorted(r for r in missing if split[r] != "test")
    assert dropped and len(dropped) < len(missing)  # the fixture has both kinds
    assert [r for r, _ in rs.skipped] == dropped
    assert all("no label in REFERENCE-original.csv" in why for _, why in rs.skipped)
    kept = [r for r in cur.record_ids if r not in dropped]
    assert list(rs.record_ids) == kept
    np.testing.assert_array_equal(rs.split, [split[r] for r in kept])  # the others keep their split
    # labels=original drops every record without an original label, test ones too, and keeps the split as well
    ro = cinc2017.load(cfg_for(root, tmp_path, labels="original"))
    assert [r for r, _ in ro.skipped] == missing
    np.testing.assert_array_equal(ro.split, [split[r] for r in ro.record_ids])
    with pytest.raises(Exception, match="no label in REFERENCE-original.csv"):
        cinc2017.load(cfg_for(root, tmp_path / "fail", labels="original-train", bad_records="fail"))


@pytest.mark.slow
def test_real_cinc2017_original_train(tmp_path):
    zpath = SHARED_DATA / "training2017.zip"
    if not zpath.exists():
        pytest.skip(f"real data not present: {zpath}")
    cur = cinc2017.load(cfg_for(zpath, tmp_path))
    rs = cinc2017.load(cfg_for(zpath, tmp_path, labels="original-train"))
    assert rs.skipped == [] and list(rs.record_ids) == list(cur.record_ids)
    np.testing.assert_array_equal(rs.split, cur.split)
    names = np.array(rs.class_names)
    test = rs.split == "test"
    np.testing.assert_array_equal(names[rs.labels[test]], rs.meta["label_current"].to_numpy()[test])
    np.testing.assert_array_equal(names[rs.labels[~test]], rs.meta["label_original"].to_numpy()[~test])
    changed = rs.meta["label_changed"].to_numpy(bool)
    assert int(changed.sum()) == 294
    assert (rs.labels != cur.labels).sum() == int((changed & ~test).sum())  # only relabelled train/val records differ
