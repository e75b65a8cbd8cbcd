"""CPSC 2018 / Georgia loaders on tiny folders in the Challenge 2020/21 layout (.hea text + MATLAB v4 .mat)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from fixtures_wfdb import write_challenge_record

from erts.config import DataConfig
from erts.data import challenge, load_dataset
from erts.data.preprocess import BadRecord

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
FS = 500
# A Challenge record line puts the time before a dd-Mon-yyyy date, which wfdb-python cannot parse.
DATE = "11:39:16 05-Feb-2020"


def _signal(i: int, n: int) -> np.ndarray:
    t = np.arange(n) / FS
    return (0.8 * np.sin(2 * np.pi * (1 + i / 20) * t + np.arange(12)[:, None])).astype(np.float64)


def write_record(folder: Path, name: str, dx: str | None, *, seconds: float = 10, mat_samples: int | None = None,
                 write_mat: bool = True, i: int = 0) -> None:
    """One record (1000 ADC units per mV); ``mat_samples`` cuts the data short of what the header says."""
    n = int(seconds * FS)
    comments = ["Age: 61", "Sex: Female", *([f"Dx: {dx}"] if dx is not None else []), "Rx: Unknown", "Hx: Unknown"]
    write_challenge_record(folder, name, _signal(i, n)[:, :mat_samples], FS, lead_names=LEADS, comments=comments,
                           time_date=DATE, n_samples_in_header=n)
    if not write_mat:
        (Path(folder) / f"{name}.mat").unlink()


NSR, AF, IAVB, RBBB, CRBBB, STD, SVPB, VPB, CLBBB, LQRSV = (
    "426783006", "164889003", "270492004", "59118001", "713427006", "429622005", "63593006", "17338001",
    "733534002", "251146004")
SPECIAL = {  # record: (Dx line, paper8 class, scored classes)
    "A0021": (AF, "AF", {"AF"}),
    "A0022": (f"{NSR},{RBBB}", "RBBB", {"NSR", "RBBB"}),  # ambiguous: NORM + RBBB
    "A0023": (CRBBB, "RBBB", {"RBBB"}),  # complete RBBB is RBBB in both tasks
    "A0024": (f"{AF},{IAVB}", "AF", {"AF", "IAVB"}),  # ambiguous: AF before AVB
    "A0025": (STD, "ST", set()),  # ST depression is not scored: kept with all-zero labels
    "A0026": (SVPB, "PVC_PAC", {"PAC"}),
    "A0027": (VPB, "PVC_PAC", {"PVC"}),
    "A0028": (CLBBB, "OTHER", {"LBBB"}),  # paper8 maps only 164909002 to LBBB
    "A0029": (LQRSV, "OTHER", {"LQRSV"}),
    "A0030": ("999999999", "OTHER", set()),  # a code in neither list is not an error
}
BAD = {"A0031": "no diagnosis", "A0032": "no diagnosis", "A0033": "A0033.mat not found",
       "A0034": "4000 samples, header says 5000"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """CPSC-like folder split into g1/ and g2/ (the Challenge 2021 layout), 36 records."""
    root = tmp_path_factory.mktemp("cpsc") / "cpsc_2018"
    for i in range(1, 21):
        write_record(root / "g1", f"A{i:04d}", NSR, i=i)
    for i, (name, (dx, _, _)) in enumerate(SPECIAL.items()):
        write_record(root / "g2", name, dx, i=21 + i)
    write_record(root / "g2", "A0031", None)
    write_record(root / "g2", "A0032", "")
    write_record(root / "g2", "A0033", NSR, write_mat=False)
    write_record(root / "g2", "A0034", NSR, mat_samples=4000)
    write_record(root / "g2", "A0035", NSR, seconds=15, i=35)  # longer: centre-cropped to 10 s
    write_record(root / "g2", "A0036", NSR, seconds=6, i=36)  # shorter: zero-padded to 10 s
    return root


def _cfg(root: Path, tmp_path: Path, **kw) -> DataConfig:
    return DataConfig(dataset="cpsc2018", root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def test_fixture_header_defeats_wfdb(root):
    with pytest.raises(ValueError):
        wfdb.rdheader(str(root / "g1" / "A0001"))


def test_label_mappings():
    assert challenge.paper8_label([NSR]) == "NORM"
    assert challenge.paper8_label([NSR, "164909002"]) == "LBBB"
    assert challenge.paper8_label(["27885002", "164931005"]) == "AVB"  # AVB before ST
    assert challenge.paper8_label(["10370003"]) == "OTHER"
    assert challenge.paper8_matches([NSR, AF, STD]) == ["AF", "ST", "NORM"]
    assert len(challenge.SCORED) == 24 and sum(len(c) for _, c in challenge.SCORED) == 28  # 27 + 733534002
    y = challenge.scored_labels([CRBBB, "284470004", "999"])
    assert {c for c, v in zip(challenge.SCORED_CLASSES, y) if v} == {"RBBB", "PAC"}
    with pytest.raises(BadRecord, match="not SNOMED-CT numbers"):
        challenge.header_dx(["Dx: 426783006,AF"], "X1")
    with pytest.raises(BadRecord, match="^X2: no diagnosis"):
        challenge.header_dx(["Age: 3"], "X2")


def test_paper8_labels_bad_records_and_signals(root, tmp_path):
    rs = challenge.load_cpsc2018(_cfg(root, tmp_path, standardize=False))
    assert rs.class_names == ["NORM", "AF", "AVB", "LBBB", "RBBB", "ST", "PVC_PAC", "OTHER"] and not rs.multilabel
    labels = dict(zip(rs.record_ids, (rs.class_names[k] for k in rs.labels)))
    assert {r: labels[r] for r in SPECIAL} == {r: v[1] for r, v in SPECIAL.items()}
    assert all(labels[f"A{i:04d}"] == "NORM" for i in [*range(1, 21), 35, 36])
    assert len(rs.record_ids) == 32
    skipped = dict(rs.skipped)
    assert skipped.keys() == BAD.keys()
    assert all(why in skipped[r] for r, why in BAD.items())
    # ambiguity is counted in meta, along with the header's demographics
    amb = dict(zip(rs.meta.record, rs.meta.paper8_ambiguous))
    assert {r for r, a in amb.items() if a} == {"A0022", "A0024"}
    assert (rs.meta.age == 61).all() and (rs.meta.sex == "Female").all()
    # mV from ADC units with the header's gain; 10 s: long records centre-cropped, short ones zero-padded
    assert rs.signals.shape == (32, 12, 5000) and rs.fs == 500.0
    i = list(rs.record_ids).index("A0001")
    np.testing.assert_allclose(rs.signals[i], _signal(1, 5000), atol=1e-3)
    i = list(rs.record_ids).index("A0035")
    np.testing.assert_allclose(rs.signals[i], _signal(35, 7500)[:, 1250:6250], atol=1e-3)
    i = list(rs.record_ids).index("A0036")
    np.testing.assert_allclose(rs.signals[i, :, :3000], _signal(36, 3000), atol=1e-3)
    assert not rs.signals[i, :, 3000:].any()


def test_scored_multilabel(root, tmp_path):
    rs = challenge.load_cpsc2018(_cfg(root, tmp_path, task="scored"))
    assert rs.multilabel and rs.labels.shape == (32, 24) and rs.class_names == challenge.SCORED_CLASSES
    got = {r: {c for c, v in zip(rs.class_names, y) if v} for r, y in zip(rs.record_ids, rs.labels)}
    assert {r: got[r] for r in SPECIAL} == {r: v[2] for r, v in SPECIAL.items()}
    assert got["A0001"] == {"NSR"}


def test_split_is_stratified_written_and_shared_by_tasks(root, tmp_path):
    cfg = _cfg(root, tmp_path)
    rs = load_dataset(cfg)  # through the registry
    # 22 NORM records: round(22 * 0.15) = 3 in val and 3 in test; classes with 1-2 records stay in train
    norm = rs.labels == rs.class_names.index("NORM")
    assert (pd.Series(rs.split[norm]).value_counts().to_dict()) == {"train": 16, "val": 3, "test": 3}
    assert (rs.split[~norm] == "train").sum() >= 8
    path = challenge.split_file(cfg, "cpsc2018")
    assert path == rs.split_path and path.exists()
    written = pd.read_csv(path, dtype=str)
    assert list(written.record) == list(rs.record_ids) and list(written.split) == list(rs.split)
    scored = load_dataset(dataclasses.replace(cfg, task="scored"))
    np.testing.assert_array_equal(scored.split, rs.split)
    other_seed = load_dataset(dataclasses.replace(cfg, split_seed=1))
    assert not np.array_equal(other_seed.split, rs.split)
    np.testing.assert_array_equal(load_dataset(cfg).split, rs.split)  # deterministic


def test_two_second_crop_and_fail_policy(root, tmp_path):
    rs = challenge.load_cpsc2018(_cfg(root, tmp_path, length_s=2))
    assert rs.signals.shape[2] == 1000  # the published 2-s setting (centre crop)
    with pytest.raises(BadRecord, match="^A0031: no diagnosis"):
        challenge.load_cpsc2018(_cfg(root, tmp_path, bad_records="fail"))


@pytest.mark.parametrize("name", ["cpsc2018", "georgia"])
def test_header_at_another_rate_is_skipped_not_stretched(root, tmp_path, name):
    """Both sets are 500 Hz: a header saying 250 Hz was resampled to 500 Hz (the record stretched
    to twice its length); it is skipped with the reason."""
    bad = tmp_path / "cpsc_2018"
    shutil.copytree(root, bad)
    hea = bad / "g1" / "A0005.hea"
    text = hea.read_text()
    hea.write_text(text.replace("A0005 12 500 5000", "A0005 12 250 5000", 1))
    assert hea.read_text() != text  # the corruption took
    rs = challenge.load_challenge(DataConfig(dataset=name, root=str(bad), cache_dir=str(tmp_path / "c")), name)
    assert dict(rs.skipped)["A0005"] == f"sampling rate 250 Hz, expected 500 Hz (the rate of every {name} record)"
    assert "A0005" not in rs.record_ids and len(rs.record_ids) == 31


def test_georgia_and_errors(tmp_path):
    root = tmp_path / "georgia"
    for i in range(1, 5):
        write_record(root / "g1", f"E{i:05d}", f"{NSR},164934002" if i % 2 else AF, i=i)
    rs = challenge.load_georgia(DataConfig(dataset="georgia", root=str(root), cache_dir=str(tmp_path / "c"),
                                           fs=250))
    assert rs.name == "georgia" and rs.fs == 250.0 and rs.signals.shape == (4, 12, 2500)
    assert [rs.class_names[k] for k in rs.labels] == ["NORM", "AF", "NORM", "AF"]
    write_record(root / "g2", "E00001", AF)  # same name in two sub-folders
    with pytest.raises(ValueError, match="E00001 appears twice"):
        challenge.load_georgia(DataConfig(dataset="georgia", root=str(root), cache_dir=str(tmp_path / "c2")))
    with pytest.raises(ValueError, match="unknown task"):
        challenge.load_georgia(DataConfig(dataset="georgia", root=str(root), task="superdiagnostic"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .hea files"):
        challenge.load_georgia(DataConfig(dataset="georgia", root=str(tmp_path / "empty")))


def test_mat_only_folder_gets_a_hint_that_fits(root, tmp_path):
    """A folder of .mat files without headers (the original CPSC 2018 release is .mat + REFERENCE.csv)
    was told "point root= at the cpsc2018 folder", which it already was."""
    bad = tmp_path / "TrainingSet1"
    shutil.copytree(root, bad)
    for hea in bad.rglob("*.hea"):
        hea.unlink()
    with pytest.raises(FileNotFoundError) as e:
        challenge.load_cpsc2018(_cfg(bad, tmp_path))
    msg = str(e.value)
    assert msg.startswith(f"no .hea files under {bad}; its .mat files have no .hea header beside them")
    assert "Challenge 2020/21 layout" in msg and "erts data download cpsc2018 --root data/cpsc2018" in msg
    assert "point root= at" not in msg
