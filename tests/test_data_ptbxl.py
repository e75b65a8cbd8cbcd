"""PTB-XL loader on a tiny folder in the exact official layout (CSVs + WFDB format-16 records),
and the format-16 reader it relies on (numpy, bit-exact with wfdb.rdrecord)."""
from __future__ import annotations

import dataclasses
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_wfdb import PTBXL_STATEMENTS as STATEMENTS
from fixtures_wfdb import ptbxl_signal, write_ptbxl, write_wfdb_record

from erts.config import DataConfig
from erts.data import load_dataset, ptbxl
from erts.data.preprocess import BadRecord
from erts.data.wfdb_io import read_wfdb
from erts.errors import DataError

# ecg_id: (scp_codes, strat_fold, what is wrong with the record files)
RECORDS = {
    1: ({"NORM": 100.0, "SR": 0.0}, 1, None),
    2: ({"IMI": 50.0, "LVH": 100.0, "SR": 0.0}, 2, None),
    3: ({"ASMI": 100.0, "ISC_": 100.0, "AFIB": 0.0}, 3, None),
    4: ({"PVC": 100.0, "SR": 0.0}, 4, None),
    5: ({"NDT": 100.0, "SR": 0.0}, 5, None),
    6: ({"LAFB": 100.0, "IRBBB": 80.0, "LOWT": 0.0}, 6, None),
    7: ({"NORM": 80.0, "LOWT": 0.0, "SR": 0.0}, 9, None),
    8: ({"IMI": 100.0}, 10, None),
    9: ({"XYZ": 100.0, "SR": 0.0}, 7, None),  # unknown SCP code
    10: ({"NORM": 100.0, "LOWT": 0.0, "SR": 0.0}, 8, "no_dat"),  # .dat missing
    11: ({"NORM": 100.0, "LOWT": 0.0, "SR": 0.0}, 8, "truncated"),  # header promises more samples than the .dat holds
}
GOOD = ["1", "2", "3", "4", "5", "6", "7", "8"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_ptbxl(tmp_path_factory.mktemp("ptbxl") / "ptb-xl", RECORDS)


def _cfg(root: Path, tmp_path: Path, **kw) -> DataConfig:
    return DataConfig(dataset="ptbxl", root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def _labels_by_record(rs) -> dict[str, set[str] | str]:
    if not rs.multilabel:
        return {r: rs.class_names[y] for r, y in zip(rs.record_ids, rs.labels)}
    return {r: {c for c, v in zip(rs.class_names, y) if v} for r, y in zip(rs.record_ids, rs.labels)}


def test_task_classes_from_statements(root):
    st = ptbxl.read_statements((root / "scp_statements.csv").read_text())
    assert ptbxl.task_classes(st, "superdiagnostic") == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert ptbxl.task_classes(st, "subdiagnostic") == [
        "AMI", "IMI", "IRBBB", "ISC_", "LAFB/LPFB", "LVH", "NORM", "STTC"]
    assert ptbxl.task_classes(st, "diagnostic") == ["ASMI", "IMI", "IRBBB", "ISC_", "LAFB", "LVH", "NDT", "NORM"]
    assert ptbxl.task_classes(st, "form") == ["LOWT", "NDT", "PVC"]
    assert ptbxl.task_classes(st, "rhythm") == ["AFIB", "SR"]
    assert ptbxl.task_classes(st, "all") == sorted(STATEMENTS)
    with pytest.raises(ValueError, match="unknown ptbxl task"):
        ptbxl.code_targets(st, "superclass")


EXPECTED = {
    "superdiagnostic": {"1": {"NORM"}, "2": {"MI", "HYP"}, "3": {"MI", "STTC"}, "5": {"STTC"}, "6": {"CD"},
                        "7": {"NORM"}, "8": {"MI"}},
    "subdiagnostic": {"1": {"NORM"}, "2": {"IMI", "LVH"}, "3": {"AMI", "ISC_"}, "5": {"STTC"},
                      "6": {"LAFB/LPFB", "IRBBB"}, "7": {"NORM"}, "8": {"IMI"}},
    "diagnostic": {"1": {"NORM"}, "2": {"IMI", "LVH"}, "3": {"ASMI", "ISC_"}, "5": {"NDT"}, "6": {"LAFB", "IRBBB"},
                   "7": {"NORM"}, "8": {"IMI"}},
    "form": {"4": {"PVC"}, "5": {"NDT"}, "6": {"LOWT"}, "7": {"LOWT"}},
    "rhythm": {"1": {"SR"}, "2": {"SR"}, "3": {"AFIB"}, "4": {"SR"}, "5": {"SR"}, "7": {"SR"}},
    "all": {"1": {"NORM", "SR"}, "2": {"IMI", "LVH", "SR"}, "3": {"ASMI", "ISC_", "AFIB"}, "4": {"PVC", "SR"},
            "5": {"NDT", "SR"}, "6": {"LAFB", "IRBBB", "LOWT"}, "7": {"NORM", "LOWT", "SR"}, "8": {"IMI"}},
    # highest likelihood wins (2: LVH 100 > IMI 50); a tie goes to the code listed first (3: ASMI)
    "superclass_single": {"1": "NORM", "2": "HYP", "3": "MI", "5": "STTC", "6": "CD", "7": "NORM", "8": "MI"},
}


@pytest.mark.parametrize("task", list(EXPECTED))
def test_task_labels_drops_and_bad_records(root, tmp_path, task):
    rs = ptbxl.load(_cfg(root, tmp_path, task=task))
    assert _labels_by_record(rs) == EXPECTED[task]
    assert rs.multilabel == (task != "superclass_single")
    skipped = dict(rs.skipped)
    # the three broken records are skipped with their reason; unlabeled ones are reported, not kept
    assert "XYZ" in skipped["9"] and "not in scp_statements.csv" in skipped["9"]
    assert "not found" in skipped["10"] and "truncated" in skipped["11"]
    unlabeled = set(GOOD) - set(EXPECTED[task])
    assert {r for r, why in rs.skipped if why.startswith(f"no {task} label")} == unlabeled
    assert len(rs.skipped) == 3 + len(unlabeled)


def test_official_folds_signals_and_meta(root, tmp_path):
    rs = ptbxl.load(_cfg(root, tmp_path, standardize=False))
    split = dict(zip(rs.record_ids, rs.split))
    assert split == {"1": "train", "2": "train", "3": "train", "5": "train", "6": "train", "7": "val", "8": "test"}
    assert rs.signals.shape == (7, 12, 1000) and rs.fs == 100.0
    assert rs.lead_names[3] == "aVR"
    # physical units survive the round trip (format 16, 1000 ADC units per mV)
    i = list(rs.record_ids).index("2")
    np.testing.assert_allclose(rs.signals[i], ptbxl_signal(2, 100), atol=1e-3)
    # meta: demographics and folds, never a diagnosis-derived column
    assert list(rs.meta.ecg_id) == [1, 2, 3, 5, 6, 7, 8]
    assert {"patient_id", "age", "sex", "strat_fold", "filename"} <= set(rs.meta.columns)
    leaky = {"scp_codes", "report", "heart_axis", "infarction_stadium1", "infarction_stadium2",
             "extra_beats", "pacemaker"}
    assert not leaky & set(rs.meta.columns)
    assert rs.meta.filename.iloc[0] == "records100/00000/00001_lr"


def test_sampling_rates(root, tmp_path):
    rs500 = ptbxl.load(_cfg(root, tmp_path, fs=500))
    assert rs500.signals.shape[2] == 5000 and rs500.meta.filename.iloc[0].startswith("records500/")
    rs250 = ptbxl.load(_cfg(root, tmp_path, fs=250))  # downsampled from the 500 Hz files
    assert rs250.fs == 250.0 and rs250.signals.shape[2] == 2500
    assert rs250.meta.filename.iloc[0].startswith("records500/")
    assert [ptbxl.native_rate(f) for f in (None, 50, 100, 101, 500, 1000)] == [100, 100, 100, 500, 500, 500]
    rs5s = ptbxl.load(_cfg(root, tmp_path, length_s=5))
    assert rs5s.signals.shape[2] == 500


def test_fail_policy_names_the_record(root, tmp_path):
    with pytest.raises(BadRecord, match=r"^9: .*XYZ"):
        ptbxl.load(_cfg(root, tmp_path, bad_records="fail"))


def test_cached_and_keyed_on_files(root, tmp_path, monkeypatch):
    cfg = _cfg(root, tmp_path)
    first = ptbxl.load(cfg)
    assert first.split_path.exists()
    built = []
    real_build = ptbxl._build
    monkeypatch.setattr(ptbxl, "_build", lambda *a: built.append(1) or real_build(*a))
    again = load_dataset(cfg)  # through the registry
    assert not built and isinstance(again.signals, np.memmap)
    np.testing.assert_array_equal(again.labels, first.labels)
    ptbxl.load(dataclasses.replace(cfg, task="form"))
    assert built == [1]  # another task is another entry


def test_zip_root_matches_folder(root, tmp_path):
    archive = tmp_path / "ptb-xl-1.0.3.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(root.rglob("*")):
            if p.is_file() and "records500" not in p.parts:
                z.write(p, Path("ptb-xl-1.0.3") / p.relative_to(root))
    from_zip = ptbxl.load(_cfg(archive, tmp_path / "z"))
    from_dir = ptbxl.load(_cfg(root, tmp_path / "d"))
    np.testing.assert_array_equal(from_zip.record_ids, from_dir.record_ids)
    np.testing.assert_allclose(np.asarray(from_zip.signals), np.asarray(from_dir.signals))
    assert dict(from_zip.skipped).keys() == dict(from_dir.skipped).keys()


def test_missing_root_and_files(tmp_path):
    with pytest.raises(ValueError, match="erts data download ptbxl"):
        ptbxl.load(DataConfig(dataset="ptbxl"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ptbxl_database.csv"):
        ptbxl.load(_cfg(tmp_path / "empty", tmp_path))
    with pytest.raises(ValueError, match="unknown ptbxl task"):
        ptbxl.load(_cfg(tmp_path / "empty", tmp_path, task="rhythms"))
    shutil.rmtree(tmp_path / "empty")


def _same_as_wfdb(path: Path) -> np.ndarray:
    """read_wfdb's output must equal wfdb.rdrecord's bit for bit (values, NaNs, rate, lead names)."""
    import wfdb

    x, fs, leads = read_wfdb(path)
    ref = wfdb.rdrecord(str(path), physical=True, return_res=32)
    np.testing.assert_array_equal(x, ref.p_signal.T)
    assert (fs, leads) == (ref.fs, ref.sig_name)
    return x


def test_format16_reader_matches_wfdb_without_calling_it(tmp_path, monkeypatch):
    import wfdb

    rng = np.random.default_rng(0)
    sig = rng.normal(0, 0.7, (12, 1000))
    sig[3, 10:20] = np.nan  # written as the invalid sample -32768, read back as NaN
    write_wfdb_record(tmp_path, "a", sig, 100, lead_names=[f"lead {i}" for i in range(12)])  # baselines != 0
    # byte offset and trailing bytes after the last frame
    (tmp_path / "b.hea").write_text((tmp_path / "a.hea").read_text().replace("a 12", "b 12", 1)
                                    .replace("a.dat 16 ", "b.dat 16+24 "))
    (tmp_path / "b.dat").write_bytes(b"\x07" * 24 + (tmp_path / "a.dat").read_bytes() + b"\x01\x02" * 8)
    # PTB-XL's own header style, a zero gain (= 200) and a baseline given only as ADC zero
    rng.normal(0, 500, (1000, 2)).astype("<i2").tofile(tmp_path / "c.dat")
    (tmp_path / "c.hea").write_text("c 2 100 1000\nc.dat 16 1000.0(0)/mV 16 0 -119 1508 0 I\n"
                                    "c.dat 16 0/mV 16 37 -119 1508 0 AVR\n")
    wanted = {}
    for name in "abc":
        wanted[name] = _same_as_wfdb(tmp_path / name)
    assert np.isnan(wanted["a"]).sum() == 10 and not np.isnan(wanted["c"]).any()

    def no_wfdb(*a, **kw):
        raise AssertionError("format 16 must be decoded without wfdb")

    monkeypatch.setattr(wfdb, "rdrecord", no_wfdb)
    monkeypatch.setattr(wfdb, "rdheader", no_wfdb)
    for name, x in wanted.items():
        np.testing.assert_array_equal(read_wfdb(tmp_path / name)[0], x)


def test_other_formats_still_go_through_wfdb(tmp_path, monkeypatch):
    """Format 212, several samples per frame, multi-segment: wfdb.rdrecord, once per record."""
    import wfdb

    calls, real = [], wfdb.rdrecord
    monkeypatch.setattr(wfdb, "rdrecord", lambda path, **kw: calls.append(Path(path).name) or real(path, **kw))
    monkeypatch.setattr(wfdb, "rdheader", lambda *a, **kw: pytest.fail("the header is parsed once, as text"))
    sig = np.random.default_rng(1).normal(0, 0.5, (2, 700))
    write_wfdb_record(tmp_path, "m", sig, 360, lead_names=["MLII", "V1"], fmt="212")
    assert _same_as_wfdb(tmp_path / "m").shape == (2, 700)
    (tmp_path / "s.hea").write_text("s 1 100 500\ns.dat 16x2 200/mV 16 0 0 0 0 I\n")  # 2 samples per frame
    (tmp_path / "s.dat").write_bytes(np.arange(1000, dtype="<i2").tobytes())
    assert _same_as_wfdb(tmp_path / "s").shape == (1, 500)
    for name, n in (("seg1", 100), ("seg2", 150)):  # a multi-segment record
        write_wfdb_record(tmp_path, name, sig[:, :n], 360, lead_names=["MLII", "V1"])
    (tmp_path / "multi.hea").write_text("multi/2 2 360 250\nseg1 100\nseg2 150\n")
    assert _same_as_wfdb(tmp_path / "multi").shape == (2, 250)
    assert calls == ["m", "m", "s", "s", "multi", "multi"]  # once by read_wfdb, once as the reference


@pytest.mark.parametrize("fs, folder, native, header_rate", [(None, "records100", 100, 500),
                                                              (500, "records500", 500, 100)])
def test_header_at_another_rate_is_skipped_not_resampled(root, tmp_path, fs, folder, native, header_rate):
    """A records100 header saying 500 Hz was resampled and zero-padded (800 of 1,000 samples zero);
    a records500 one saying 100 Hz was stretched five times. Both are skipped with the reason."""
    bad = tmp_path / "ptb-xl"
    shutil.copytree(root, bad)
    name = f"00002_{'lr' if native == 100 else 'hr'}"
    hea = bad / folder / "00000" / f"{name}.hea"
    text = hea.read_text()
    hea.write_text(text.replace(f"{name} 12 {native} ", f"{name} 12 {header_rate} ", 1))
    assert hea.read_text() != text  # the corruption took
    rs = ptbxl.load(_cfg(bad, tmp_path, fs=fs))
    assert dict(rs.skipped)["2"] == f"sampling rate {header_rate} Hz, expected {native} Hz in {folder}/"
    assert sorted(rs.record_ids) == sorted(set(EXPECTED["superdiagnostic"]) - {"2"})


def _corrupt_database(root: Path, tmp_path: Path, edit) -> Path:
    """A copy of the fixture whose ptbxl_database.csv lines went through ``edit`` (one thing changed)."""
    bad = tmp_path / "ptb-xl"
    shutil.copytree(root, bad)
    db = bad / "ptbxl_database.csv"
    lines = db.read_text().splitlines(keepends=True)
    db.write_text("".join(edit(lines)))
    return bad


def test_duplicated_database_row_is_an_error(root, tmp_path):
    """A row listed twice made its record appear twice; wfdb-folder rejects the same with one line."""
    bad = _corrupt_database(root, tmp_path, lambda lines: lines[:5] + [lines[4]] + lines[5:])  # ecg_id 4 again
    with pytest.raises(DataError, match=r"ptbxl_database.csv: ecg_id\(s\) listed twice: 4$"):
        ptbxl.load(_cfg(bad, tmp_path))


@pytest.mark.parametrize("line", [2, 12])  # the first row (ecg_id 1), the last (ecg_id 11)
def test_unterminated_quote_in_database_is_an_error(root, tmp_path, line):
    """A scp_codes field whose closing quote is gone runs into the lines after it: the first row's
    shifted every column (then every record failed with a misleading reason), the last row's was
    pandas' traceback. Either is one line naming the row, and nothing is read."""
    def drop_closing_quote(lines):
        assert '}"' in lines[line - 1]
        return lines[:line - 1] + [lines[line - 1].replace('}"', "}", 1)] + lines[line:]

    bad = _corrupt_database(root, tmp_path, drop_closing_quote)
    with pytest.raises(DataError, match=f"ptbxl_database.csv: line {line}: this row does not match the header"):
        ptbxl.load(_cfg(bad, tmp_path))


def test_database_rows_that_swallow_lines_are_found():
    """An open quote that swallows the next line into one field, with the commas adding up, is one
    row where there are two lines: pandas reads it without a word; read_database names the line."""
    text = 'ecg_id,scp_codes,strat_fold,filename_lr,filename_hr\n1,"{\'NORM\': 1.0},1,a\n2,b",1,c,d\n3,{},1,e,f\n'
    assert len(pd.read_csv(io.StringIO(text))) == 2  # pandas alone: ecg_id 2 is gone, without a word
    with pytest.raises(DataError, match=r"^db.csv: line 2: this row does not match the header"):
        ptbxl.read_database(text, "db.csv")


def test_the_benchmark_preset_trains_and_evaluates_as_the_protocol_says(root, tmp_path):
    """preset=ptbxl-benchmark end to end on the fixture: official folds, the scaler fitted on folds 1-8,
    7 sliding windows per 10-s test record aggregated by their maximum (checked against the model run
    by hand on the windows), macro-AUROC reported."""
    import numpy as np
    import torch

    from erts.api import load_run
    from erts.config import load_config
    from erts.train.loop import train
    from erts.data.tensors import fit_standardizer

    cfg = load_config(overrides={"preset": "ptbxl-benchmark", "root": str(root), "cache_dir": str(tmp_path / "c"),
                                 "epochs": 1, "batch_size": 4, "num_threads": 1, "quiet": True,
                                 "out_dir": str(tmp_path), "name": "b"})
    assert (cfg.data.standardize, cfg.data.eval_windows, cfg.data.eval_aggregate) == ("train", "sliding", "max")
    m = train(cfg)
    assert m["model"] == "resnet1d_wang" and "macro_auroc" in m["test"]
    run = load_run(tmp_path / "b")
    rs = load_dataset(cfg.data)
    mean, std = fit_standardizer(rs)
    train_x = np.concatenate([rs.signals[i].ravel() for i in rs.indices("train")])
    assert mean == pytest.approx(train_x.mean(), rel=1e-6, abs=1e-9)
    test_i = rs.indices("test")
    with np.load(tmp_path / "b" / "predictions_test.npz") as z:
        probs = z["probs"]
    x = torch.from_numpy((rs.signals[test_i] - mean) / std).float()
    windows = torch.stack([x[:, :, s:s + 250] for s in range(0, 751, 125)], 1)  # (n, 7, 12, 250)
    with torch.inference_mode():
        p = torch.sigmoid(run.model(windows.flatten(0, 1))).view(len(test_i), 7, -1).amax(1)
    np.testing.assert_allclose(probs, p.numpy(), rtol=1e-4, atol=1e-5)
