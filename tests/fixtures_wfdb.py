"""Writers of small ECG fixtures in the exact official PhysioNet layouts, for loader tests.

Importable by any test (``from fixtures_wfdb import ...``): WFDB records and
``.atr`` annotations (via wfdb.wrsamp / wfdb.wrann), Challenge-style
``.hea`` + MATLAB v4 ``.mat`` records (scipy.io.savemat, header written as text,
as PhysioNet ships them), the CinC 2017 ``training2017/`` folder and zip, a
MIT-BIH-like folder, a user's WFDB folder with ``labels.csv``, a PTB-XL folder
(the two CSVs + ``records100/``, ``records500/``) and a CPSC 2018 / Georgia
folder (``.hea`` + ``.mat`` with ``# Dx:`` SNOMED-CT codes).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import wfdb


def synthetic_ecg(n_samples: int, fs: float, *, n_leads: int = 1, hr: float = 72.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A plausible ECG in mV: Gaussian P/QRS/T waves at a jittered heart rate, plus noise.

    Returns ``((n_leads, n_samples) float64, R-peak sample indices)``.
    """
    rng = np.random.default_rng(seed)
    rr = fs * 60.0 / hr
    peaks = np.arange(rr / 2, n_samples, rr) + rng.normal(0, 0.03 * fs, size=len(np.arange(rr / 2, n_samples, rr)))
    peaks = np.clip(np.round(peaks), 0, n_samples - 1).astype(np.int64)
    t = np.arange(n_samples)[:, None]
    wave = np.zeros(n_samples)
    for offset_s, width_s, amp in ((-0.2, 0.025, 0.15), (0.0, 0.012, 1.0), (0.3, 0.05, 0.3)):
        c = peaks[None, :] + offset_s * fs
        wave += (amp * np.exp(-0.5 * ((t - c) / (width_s * fs)) ** 2)).sum(1)
    leads = [wave * (1.0 - 0.3 * i) + rng.normal(0, 0.02, n_samples) for i in range(n_leads)]
    return np.stack(leads), peaks


def write_wfdb_record(folder: str | Path, name: str, signal_mv: np.ndarray, fs: float,
                      lead_names: list[str] | None = None, fmt: str = "16") -> Path:
    """Writes ``name.hea`` + ``name.dat`` with wfdb.wrsamp; returns the path without extension."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sig = np.asarray(signal_mv, dtype=np.float64)
    n = sig.shape[0]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * n, sig_name=lead_names or [f"L{i}" for i in range(n)],
                p_signal=sig.T, fmt=[fmt] * n, write_dir=str(folder))
    return folder / name


def write_atr(folder: str | Path, name: str, samples: np.ndarray, symbols: list[str], fs: float | None = None) -> Path:
    """Writes beat/rhythm annotations ``name.atr`` with wfdb.wrann."""
    order = np.argsort(samples, kind="stable")
    wfdb.wrann(name, "atr", np.asarray(samples, dtype=np.int64)[order], symbol=[symbols[i] for i in order],
               fs=fs, write_dir=str(folder))
    return Path(folder) / f"{name}.atr"


def write_challenge_record(folder: str | Path, name: str, signal_mv: np.ndarray, fs: float, *,
                           lead_names: list[str], gain: float = 1000.0, baseline: int = 0,
                           comments: list[str] = (), time_date: str = "05:05:15 1/05/2000",
                           n_samples_in_header: int | None = None) -> Path:
    """Writes ``name.mat`` (MATLAB v4, int16 ``val`` in ADC units) and a text ``name.hea`` as PhysioNet ships them.

    The header line per signal is ``name.mat 16+24 1000/mV 16 0 <first> 0 0 <lead>``
    (the v4 .mat header is 24 bytes for a variable named ``val``).
    ``n_samples_in_header`` lets a test write a header that disagrees with the data.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    val = np.clip(np.round(np.asarray(signal_mv) * gain + baseline), -32768, 32767).astype(np.int16)
    scipy.io.savemat(folder / f"{name}.mat", {"val": val}, format="4")
    n_sig, n = val.shape
    gain_s = f"{gain:g}" if baseline == 0 else f"{gain:g}({baseline})"
    lines = [f"{name} {n_sig} {fs:g} {n if n_samples_in_header is None else n_samples_in_header} {time_date}"]
    lines += [f"{name}.mat 16+24 {gain_s}/mV 16 0 {int(val[i, 0])} 0 0 {lead_names[i]}" for i in range(n_sig)]
    lines += [f"# {c}" for c in comments]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.hea"


def write_cinc2017(root: str | Path, labels: dict[str, str], original: dict[str, str] | None = None, *,
                   seconds: dict[str, float] | None = None, fs: float = 300.0, seed: int = 0) -> Path:
    """Writes ``root/training2017/`` like the official download; returns that folder.

    ``labels`` -> REFERENCE.csv, ``original`` (default: same) -> REFERENCE-original.csv,
    ``seconds`` per record (default 30 s); a RECORDS file lists every record.
    """
    folder = Path(root) / "training2017"
    for i, rid in enumerate(sorted(labels)):
        n = int(round((seconds or {}).get(rid, 30.0) * fs))
        sig, _ = synthetic_ecg(n, fs, hr=60 + (i * 7) % 50, seed=seed + i)
        write_challenge_record(folder, rid, sig, fs, lead_names=["ECG"])
    write_reference(folder / "REFERENCE.csv", labels)
    write_reference(folder / "REFERENCE-original.csv", original if original is not None else labels)
    (folder / "RECORDS").write_text("".join(f"{r}\n" for r in sorted(labels)))
    return folder


def write_reference(path: str | Path, labels: dict[str, str]) -> Path:
    """CinC 2017 label file: no header, ``A00001,N`` per line."""
    Path(path).write_text("".join(f"{r},{lab}\n" for r, lab in sorted(labels.items())))
    return Path(path)


def zip_folder(folder: str | Path, zip_path: str | Path) -> Path:
    """Zips ``folder`` with members under ``<folder name>/`` (as PhysioNet's zips are laid out)."""
    folder = Path(folder)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(folder.name + "/", "")
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    return Path(zip_path)


def write_mitbih_record(folder: str | Path, name: str, beat_symbols: list[str], *, seconds: float = 20.0,
                        fs: float = 360.0, leads: tuple[str, str] = ("MLII", "V1"), seed: int = 0,
                        edge_beat: bool = False) -> list[str]:
    """A MIT-BIH-like record: 2 leads in format 212 and an ``.atr`` with a rhythm label and a noise mark.

    ``beat_symbols`` are assigned to the synthetic R peaks in order (cycled).
    With ``edge_beat`` an extra 'N' beat is annotated 5 samples from the start,
    so its window runs off the edge. Returns the beat symbols written.
    """
    sig, peaks = synthetic_ecg(int(seconds * fs), fs, n_leads=2, seed=seed)
    write_wfdb_record(folder, name, sig, fs, list(leads), fmt="212")
    peaks = peaks[(peaks > 0.5 * fs) & (peaks < len(sig[0]) - 0.5 * fs)]
    beats = [beat_symbols[i % len(beat_symbols)] for i in range(len(peaks))]
    samples, symbols = list(peaks), list(beats)
    samples += [1, int(peaks[len(peaks) // 2] + 0.1 * fs)]  # rhythm change and noise: not beats
    symbols += ["+", "~"]
    if edge_beat:
        samples.append(5)
        symbols.append("N")
        beats.append("N")
    write_atr(folder, name, np.asarray(samples), symbols, fs=fs)
    return beats


def write_wfdb_folder(root: str | Path, labels: dict[str, str], *, fs: float = 250.0, seconds: float = 10.0,
                      n_leads: int = 2, splits: dict[str, str] | None = None, seed: int = 0) -> Path:
    """A user's folder: one WFDB record per entry of ``labels`` and ``labels.csv`` (``record,label[,split]``)."""
    root = Path(root)
    for i, rid in enumerate(sorted(labels)):
        sig, _ = synthetic_ecg(int(seconds * fs), fs, n_leads=n_leads, seed=seed + i)
        write_wfdb_record(root / Path(rid).parent, Path(rid).name, sig, fs, [f"L{j}" for j in range(n_leads)])
    df = pd.DataFrame({"record": sorted(labels), "label": [labels[r] for r in sorted(labels)]})
    if splits is not None:
        df["split"] = [splits[r] for r in df["record"]]
    df.to_csv(root / "labels.csv", index=False)
    return root


# --------------------------------------------------------------------------- PTB-XL

PTBXL_WFDB_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]  # as PTB-XL writes them
# scp_statements.csv: real column names, real rows for the codes used in the tests.
PTBXL_STATEMENT_COLUMNS = ["description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass",
                           "Statement Category", "SCP-ECG Statement Description", "AHA code", "aECG REFID",
                           "CDISC Code", "DICOM Code"]
PTBXL_STATEMENTS = {  # code: (diagnostic, form, rhythm, class, subclass)
    "NDT": (1, 1, None, "STTC", "STTC"),
    "NORM": (1, None, None, "NORM", "NORM"),
    "IMI": (1, None, None, "MI", "IMI"),
    "ASMI": (1, None, None, "MI", "AMI"),
    "LVH": (1, None, None, "HYP", "LVH"),
    "LAFB": (1, None, None, "CD", "LAFB/LPFB"),
    "ISC_": (1, None, None, "STTC", "ISC_"),
    "IRBBB": (1, None, None, "CD", "IRBBB"),
    "PVC": (None, 1, None, None, None),
    "LOWT": (None, 1, None, None, None),
    "SR": (None, None, 1, None, None),
    "AFIB": (None, None, 1, None, None),
}
PTBXL_DB_COLUMNS = ["ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device",
                    "recording_date", "report", "scp_codes", "heart_axis", "infarction_stadium1",
                    "infarction_stadium2", "validated_by", "second_opinion", "initial_autogenerated_report",
                    "validated_by_human", "baseline_drift", "static_noise", "burst_noise", "electrodes_problems",
                    "extra_beats", "pacemaker", "strat_fold", "filename_lr", "filename_hr"]


def ptbxl_signal(ecg_id: int, fs: int, seconds: float = 10.0) -> np.ndarray:
    """A 12-lead test signal (mV) that differs per record and per lead."""
    t = np.arange(int(round(seconds * fs))) / fs
    lead = np.arange(12)[:, None]
    return (0.5 * np.sin(2 * np.pi * (1 + ecg_id / 10) * t + lead) + 0.05 * lead).astype(np.float64)


def write_ptbxl(root: str | Path, records: dict[int, tuple[dict[str, float], int, str | None]], *,
                rates: tuple[int, ...] = (100, 500), seconds: float = 10.0) -> Path:
    """A PTB-XL folder: ``ptbxl_database.csv``, ``scp_statements.csv``, ``records100/``, ``records500/``.

    ``records``: ecg_id -> (scp_codes, strat_fold, defect) with defect None,
    ``"no_dat"`` (the .dat is deleted) or ``"truncated"`` (half the .dat).
    Records are WFDB format 16 written by wfdb.wrsamp, with PTB-XL's lead names.
    Only the ``rates`` given are written (the CSV names both files anyway).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    st = pd.DataFrame([{"": code, "description": code.lower(), "diagnostic": d, "form": f, "rhythm": r,
                        "diagnostic_class": c, "diagnostic_subclass": s, "Statement Category": "x",
                        "SCP-ECG Statement Description": code, "AHA code": None, "aECG REFID": None,
                        "CDISC Code": None, "DICOM Code": None}
                       for code, (d, f, r, c, s) in PTBXL_STATEMENTS.items()])
    st.to_csv(root / "scp_statements.csv", index=False)
    rows = []
    for ecg_id, (codes, fold, defect) in records.items():
        sub = f"{ecg_id // 1000 * 1000:05d}"
        lr, hr = f"records100/{sub}/{ecg_id:05d}_lr", f"records500/{sub}/{ecg_id:05d}_hr"
        for rel, fs in ((lr, 100), (hr, 500)):
            if fs not in rates:
                continue
            write_wfdb_record(root / Path(rel).parent, Path(rel).name, ptbxl_signal(ecg_id, fs, seconds), fs,
                              lead_names=PTBXL_WFDB_LEADS)
            dat = root / f"{rel}.dat"
            if defect == "no_dat":
                dat.unlink()
            elif defect == "truncated":
                dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
        rows.append({"ecg_id": ecg_id, "patient_id": 1000.0 + ecg_id, "age": 50.0 + ecg_id, "sex": ecg_id % 2,
                     "height": None, "weight": 70.0, "nurse": 2.0, "site": 0.0, "device": "CS-12   E",
                     "recording_date": "1984-11-09 09:17:34", "report": "sinusrhythmus", "scp_codes": str(codes),
                     "heart_axis": "LAD", "infarction_stadium1": "Stadium I", "infarction_stadium2": None,
                     "validated_by": 1.0, "second_opinion": False, "initial_autogenerated_report": False,
                     "validated_by_human": True, "baseline_drift": None, "static_noise": None,
                     "burst_noise": None, "electrodes_problems": None, "extra_beats": None, "pacemaker": None,
                     "strat_fold": fold, "filename_lr": lr, "filename_hr": hr})
    pd.DataFrame(rows, columns=PTBXL_DB_COLUMNS).to_csv(root / "ptbxl_database.csv", index=False)
    return root


# --------------------------------------------------------------------------- CPSC 2018 / Georgia

CHALLENGE_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def write_challenge_folder(root: str | Path, dx: dict[str, str], *, fs: float = 500.0, seconds: float = 10.0,
                           seed: int = 0) -> Path:
    """A CPSC 2018 / Georgia folder in the Challenge 2020/21 layout: one ``X.hea`` + ``X.mat`` per
    entry of ``dx`` (record name -> ``Dx`` line, comma-separated SNOMED-CT codes), 12 leads."""
    root = Path(root)
    for i, (name, codes) in enumerate(sorted(dx.items())):
        sig, _ = synthetic_ecg(int(round(seconds * fs)), fs, n_leads=12, hr=60 + (i * 7) % 50, seed=seed + i)
        write_challenge_record(root, name, sig, fs, lead_names=CHALLENGE_LEADS,
                               comments=["Age: 61", "Sex: Female", f"Dx: {codes}", "Rx: Unknown", "Hx: Unknown"],
                               time_date="11:39:16 05-Feb-2020")
    return root
