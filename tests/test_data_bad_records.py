"""Bad records: each kind is reported by record name and reason, skipped or fatal, never zero-filled."""
from __future__ import annotations

import numpy as np
import pytest
from fixtures_wfdb import (synthetic_ecg, write_challenge_record, write_cinc2017, write_wfdb_folder,
                           write_wfdb_record, zip_folder)

from erts.config import DataConfig
from erts.data import cinc2017, wfdb_folder
from erts.data.preprocess import BadRecord
from erts.data.wfdb_io import decode_challenge_mat, parse_header, read_wfdb

GOOD = {f"A{i:05d}": "NAO~"[i % 4] for i in range(1, 17)}


def corrupt_cinc(root):
    """A CinC 2017 folder with one record of each kind of fault; returns (zip, {record: reason fragment})."""
    bad = {"A00101": "N", "A00102": "A", "A00103": "O", "A00104": "N", "A00105": "A", "A00106": "O", "A00107": "X"}
    folder = write_cinc2017(root, {**GOOD, **bad})
    (folder / "A00101.mat").unlink()  # missing signal file
    data = (folder / "A00102.mat").read_bytes()
    (folder / "A00102.mat").write_bytes(data[: len(data) // 2])  # truncated signal file
    sig, _ = synthetic_ecg(9000, 300.0)
    write_challenge_record(folder, "A00103", sig, 300.0, lead_names=["ECG"], n_samples_in_header=9500)  # header != data
    write_challenge_record(folder, "A00104", np.full((1, 9000), 0.25), 300.0, lead_names=["ECG"])  # flat lead
    sig500, _ = synthetic_ecg(15000, 500.0)
    write_challenge_record(folder, "A00105", sig500, 500.0, lead_names=["ECG"])  # unexpected sampling rate
    sig2, _ = synthetic_ecg(9000, 300.0, n_leads=2)
    write_challenge_record(folder, "A00106", sig2, 300.0, lead_names=["I", "II"])  # unexpected lead count
    write_challenge_record(folder, "A00108", sig, 300.0, lead_names=["ECG"])  # record without a label
    expected = {"A00101": "A00101.mat not found", "A00102": "unreadable .mat", "A00103": "header says 9500",
                "A00104": "flat lead", "A00105": "sampling rate 500 Hz", "A00106": "has 2 leads, expected 1",
                "A00107": "unknown label 'X'", "A00108": "not listed in REFERENCE.csv"}
    return zip_folder(folder, root / "training2017.zip"), expected


def corrupt_folder(root):
    """A WFDB folder with one record of each kind of fault; returns (root, {record: reason fragment})."""
    labels = {f"ok{i}": "ab"[i % 2] for i in range(8)}
    bad = {"nodat": "a", "short": "b", "nans": "a", "flat": "b", "fs500": "a", "threelead": "b", "nolabel": "", "unknown": "q"}
    root = write_wfdb_folder(root, {**labels, **bad}, fs=250.0, seconds=4.0)
    (root / "nodat.dat").unlink()
    data = (root / "short.dat").read_bytes()
    (root / "short.dat").write_bytes(data[:1000])
    sig, _ = synthetic_ecg(1000, 250.0, n_leads=2)
    sig[1, 300:320] = np.nan
    write_wfdb_record(root, "nans", sig, 250.0, ["L0", "L1"])
    flat = synthetic_ecg(1000, 250.0, n_leads=2)[0]
    flat[1] = 0.3
    write_wfdb_record(root, "flat", flat, 250.0, ["L0", "L1"])
    write_wfdb_record(root, "fs500", synthetic_ecg(2000, 500.0, n_leads=2)[0], 500.0, ["L0", "L1"])
    write_wfdb_record(root, "threelead", synthetic_ecg(1000, 250.0, n_leads=3)[0], 250.0, ["L0", "L1", "L2"])
    (root / "classes.txt").write_text("a\nb\n")
    expected = {"nodat": "nodat.dat not found", "short": "truncated", "nans": "NaN", "flat": "flat lead(s) L1 (constant",
                "fs500": "sampling rate 500 Hz", "threelead": "has 3 leads, expected 2", "nolabel": "empty label",
                "unknown": "unknown label(s) ['q']"}
    return root, expected


def assert_reported(rs, expected: dict[str, str], good: set[str]) -> None:
    reasons = dict(rs.skipped)
    assert set(reasons) == set(expected), f"skipped {sorted(reasons)}"
    for rid, fragment in expected.items():
        assert fragment in reasons[rid], f"{rid}: {reasons[rid]!r} lacks {fragment!r}"
    assert set(rs.record_ids) == good  # bad records are gone, not zero-filled
    assert all(np.ptp(np.asarray(rs.signals[i])) > 0 for i in range(len(rs.signals)))


def test_cinc2017_bad_records_are_skipped_and_reported(tmp_path):
    zpath, expected = corrupt_cinc(tmp_path)
    rs = cinc2017.load(DataConfig(dataset="cinc2017", root=str(zpath), cache_dir=str(tmp_path / "c")))
    assert_reported(rs, expected, set(GOOD))


def test_cinc2017_fail_policy_names_the_first_bad_record(tmp_path):
    zpath, _ = corrupt_cinc(tmp_path)
    with pytest.raises(BadRecord) as err:
        cinc2017.load(DataConfig(dataset="cinc2017", root=str(zpath), cache_dir=str(tmp_path / "c"), bad_records="fail"))
    assert err.value.record_id == "A00101" and "not found" in err.value.reason


def test_wfdb_folder_bad_records_are_skipped_and_reported(tmp_path):
    root, expected = corrupt_folder(tmp_path / "f")
    rs = wfdb_folder.load(DataConfig(dataset="wfdb-folder", root=str(root), cache_dir=str(tmp_path / "c")))
    assert_reported(rs, expected, {f"ok{i}" for i in range(8)})


def test_nan_policy_interpolate_keeps_the_record(tmp_path):
    root, expected = corrupt_folder(tmp_path / "f")
    rs = wfdb_folder.load(DataConfig(dataset="wfdb-folder", root=str(root), cache_dir=str(tmp_path / "c"),
                                     nan_policy="interpolate"))
    assert "nans" in set(rs.record_ids) and "nans" not in dict(rs.skipped)
    assert np.isfinite(rs.signals).all()


def test_wfdb_folder_fail_policy(tmp_path):
    root, _ = corrupt_folder(tmp_path / "f")
    with pytest.raises(BadRecord, match=r"^flat: flat lead\(s\) L1 "):  # records are read in sorted order
        wfdb_folder.load(DataConfig(dataset="wfdb-folder", root=str(root), cache_dir=str(tmp_path / "c"),
                                    bad_records="fail"))


def test_readers_raise_bad_record_with_the_name(tmp_path):
    with pytest.raises(BadRecord, match="^r1: header file r1.hea not found"):
        read_wfdb(tmp_path / "r1")
    with pytest.raises(BadRecord, match="malformed header record line"):
        parse_header("A1 x 300\n", "A1")
    with pytest.raises(BadRecord, match="header lists 0 signal lines"):
        parse_header("A1 1 300 9000\n", "A1")
    sig, _ = synthetic_ecg(300, 300.0)
    hea = write_challenge_record(tmp_path, "A2", sig, 300.0, lead_names=["ECG"])
    two_leads = hea.read_text().replace("A2 1 300", "A2 2 300") + "A2.mat 16+24 1000/mV 16 0 0 0 0 ECG2\n"
    with pytest.raises(BadRecord, match="^A2: .mat 'val' has shape \\(1, 300\\), header says 2 leads"):
        decode_challenge_mat(two_leads, (tmp_path / "A2.mat").read_bytes(), "A2")


def test_crop_or_pad_policies():
    import numpy as np

    from erts.data.preprocess import crop_or_pad

    x = np.arange(10, dtype=np.float32)[None]
    assert crop_or_pad(x, 4, "center").tolist() == [[3, 4, 5, 6]]
    assert crop_or_pad(x, 4, "start").tolist() == [[0, 1, 2, 3]]   # the published CPSC first-2-s cut
    r = crop_or_pad(x, 4, "random", np.random.default_rng(0))
    assert r.shape == (1, 4) and (np.diff(r[0]) == 1).all()
    assert crop_or_pad(x, 12, "center").tolist() == [list(range(10)) + [0, 0]]
