"""MIT-BIH loader: beats from .atr, AAMI classes, windows, lead order, inter-patient split, edge beats."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from conftest import SHARED_DATA
from fixtures_wfdb import write_mitbih_record, zip_folder

from erts.config import DataConfig
from erts.data import mitbih
from erts.data.preprocess import standardize
from erts.data.wfdb_io import read_wfdb

# record -> beat symbols cycled over its R peaks (DS1: 101..114, DS2: 100..105, paced: 102)
RECORDS = {
    "101": ["N", "N", "N", "A"], "106": ["N", "N", "V"], "108": ["N", "F", "V", "A"], "109": ["L", "R", "N", "a"],
    "112": ["N", "e", "j", "E", "F"], "114": ["N", "V", "S", "J"],
    "100": ["N", "A"], "103": ["N", "V", "F"], "105": ["N", "Q", "/", "f"],
    "102": ["/", "N"],
}


@pytest.fixture(scope="module")
def mit(tmp_path_factory):
    root = tmp_path_factory.mktemp("mit")
    folder = root / "mit-bih-arrhythmia-database-1.0.0"
    beats = {}
    for i, (rec, symbols) in enumerate(RECORDS.items()):
        leads = ("V5", "MLII") if rec == "114" else ("MLII", "V1")  # 114 stores MLII second, as in the real set
        beats[rec] = write_mitbih_record(folder, rec, symbols, seed=i, leads=leads, edge_beat=rec == "101")
    (folder / "RECORDS").write_text("".join(f"{r}\n" for r in RECORDS))
    return folder, zip_folder(folder, root / "mitdb.zip"), beats


def load(root, tmp_path, **kw):
    return mitbih.load(DataConfig(dataset="mitbih", root=str(root), cache_dir=str(tmp_path / "cache"), **kw))


def test_beats_and_aami_classes(mit, tmp_path):
    folder, zpath, beats = mit
    rs = load(zpath, tmp_path)
    assert rs.class_names == ["N", "S", "V", "F", "Q"] and rs.fs == 360.0
    assert rs.signals.shape[1:] == (2, 90 + 162) and rs.lead_names[0] == "MLII"
    assert "102" not in set(rs.meta["record"].astype(str))  # paced record left out
    for rec, symbols in beats.items():
        if rec in mitbih.PACED:
            continue
        if rec == "101":
            symbols = symbols[:-1]  # the beat 5 samples from the start runs off the edge
        got = rs.meta["record"].astype(str) == rec
        assert collections.Counter(rs.meta.loc[got, "symbol"]) == collections.Counter(symbols)
        want = collections.Counter(mitbih.AAMI[s] for s in symbols)
        assert collections.Counter(rs.class_names[k] for k in rs.labels[got.to_numpy()]) == want
    assert not set(rs.meta["symbol"]) & {"+", "~"}  # rhythm and noise marks are not beats
    assert ("101_5", "beat window runs off the record edge") in rs.skipped
    missing = {r for r, reason in rs.skipped if "not found" in reason}
    assert missing == set(mitbih.DS1 + mitbih.DS2) - set(RECORDS)  # absent records are reported, not hidden


def test_windows_are_centred_on_the_r_peak_with_mlii_first(mit, tmp_path):
    folder, zpath, _ = mit
    rs = load(folder, tmp_path)
    for rec in ("106", "114"):
        x, _, leads = read_wfdb(folder / rec)
        z = standardize(x[[leads.index("MLII"), 1 - leads.index("MLII")]])
        rows = np.flatnonzero(rs.meta["record"].astype(str) == rec)
        for i in rows[:3]:
            s = int(rs.meta["sample"][i])
            np.testing.assert_allclose(rs.signals[i], z[:, s - 90:s + 162], atol=1e-5)
            assert rs.record_ids[i] == f"{rec}_{s}"


def test_inter_patient_split(mit, tmp_path):
    folder, zpath, _ = mit
    rs = load(zpath, tmp_path, split_seed=0)
    rec = rs.meta["record"].astype(str).to_numpy()
    for r in set(rec):
        assert len(set(rs.split[rec == r])) == 1  # a patient is never split
        assert (rs.split[rec == r][0] == "test") == (r in mitbih.DS2)
    ds1 = sorted(set(rec) & set(mitbih.DS1))
    val = set(rec[rs.split == "val"])
    assert len(val) == min(mitbih.VAL_RECORDS, len(ds1) - 1)
    again = load(folder, tmp_path / "b", split_seed=0)
    np.testing.assert_array_equal(rs.split, again.split)


def test_val_draw_keeps_classes_in_train_and_val():
    records = np.array(mitbih.DS1 * 3)
    labels = np.zeros(len(records), dtype=np.int64)
    labels[records == "208"] = 3  # 3 of the 4 F beats in one record: it must stay in train
    labels[np.flatnonzero(records == "201")[0]] = 3
    labels[records == "209"] = 1
    labels[records == "220"] = 1
    labels[records == "106"] = 2
    labels[records == "119"] = 2
    split = mitbih.inter_patient_split(records, labels, seed=5)
    assert set(split[records == "208"]) == {"train"}
    assert len(set(records[split == "val"])) == mitbih.VAL_RECORDS
    assert {1, 2, 3} <= set(labels[split == "val"]) and {1, 2, 3} <= set(labels[split == "train"])


def test_length_s_sets_a_centred_window(mit, tmp_path):
    _, zpath, _ = mit
    rs = load(zpath, tmp_path, length_s=0.5)
    assert rs.signals.shape[2] == 180
    assert mitbih.window(360.0, 0.5) == (90, 180) and mitbih.window(360.0, None) == (90, 252)


@pytest.mark.slow
def test_real_mitbih_ds1_ds2_aami_counts(tmp_path):
    zpath = SHARED_DATA / "mit-bih-arrhythmia-database-1.0.0.zip"
    if not zpath.exists():
        pytest.skip(f"real data not present: {zpath}")
    rs = load(zpath, tmp_path)
    rec = rs.meta["record"].astype(str).to_numpy()
    counts = {}
    for name, ds in (("DS1", mitbih.DS1), ("DS2", mitbih.DS2)):
        counts[name] = {c: int(k) for c, k in zip(rs.class_names, np.bincount(rs.labels[np.isin(rec, ds)], minlength=5))}
    print(counts)
    # literature (de Chazal 2004): DS1 N 45,866 S 944 V 3,788 F 415 Q 8; DS2 N 44,259 S 1,837 V 3,221 F 388 Q 7;
    # the differences are the 39 beats whose 0.25 s / 0.45 s window runs off a record edge
    assert counts["DS1"] == {"N": 45848, "S": 944, "V": 3788, "F": 414, "Q": 8}
    assert counts["DS2"] == {"N": 44240, "S": 1837, "V": 3220, "F": 388, "Q": 7}
    edge = [r for r, reason in rs.skipped if "edge" in reason]
    assert len(edge) == len(rs.skipped) == 39
    assert set(rs.split[np.isin(rec, mitbih.DS2)]) == {"test"}
