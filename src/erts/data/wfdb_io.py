"""Reading ECG records in the PhysioNet layouts: WFDB (.hea + .dat) and Challenge-style .hea + .mat.

Why a module of its own: every real-dataset loader must turn a broken file into
the same ``BadRecord(record_id, reason)`` (see preprocess.py), whichever
dataset it comes from, and must read from a ``.zip`` download or its extracted
folder alike.

Public API (stable; other loaders import it):

- ``read_wfdb(path, record_id=None) -> (signal, fs, lead_names)``: format 16 decoded with
  numpy, everything else via wfdb.rdrecord; the header is parsed once.
- ``parse_header(text, record_id) -> Header``: a WFDB header parsed as *text*
  (wfdb-python rejects some Challenge 2020/21 date fields).
- ``read_challenge_mat(hea_path, record_id=None) -> (signal, fs, lead_names, comments)``.
- ``decode_challenge_mat(hea_text, mat_bytes, record_id) -> same``: the bytes version,
  used for members of a zip.
- ``parse_dx(comments) -> list[str]``: codes of ``# Dx: a,b`` header lines.
- ``Source(root)``: a dataset root that is a folder or a ``.zip``, read the same
  way without extracting everything (``names``, ``find``, ``read_bytes``,
  ``read_text``, ``fingerprint``, ``extract``).
- ``progress(iterable, desc, total)``: the loaders' progress (erts.progress: a bar on a terminal,
  plain lines otherwise; off with ERTS_QUIET=1).

Signals are always ``(leads, samples)`` float32 in physical units (mV).
"""
from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from erts.data.preprocess import BadRecord
from erts.errors import DataError

DEFAULT_GAIN = 200.0  # WFDB: ADC units per mV when the header gives no (or a zero) gain
WFDB_INVALID_16 = -32768  # format 16's "no sample" value, read as NaN (as wfdb does)
BITS = {"16": 16, "61": 16, "80": 8, "160": 16, "212": 12, "310": 10, "311": 10, "24": 24, "32": 32, "8": 8}
_FORMAT = re.compile(r"(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?")  # fmt[xspf][:skew][+offset]


# --------------------------------------------------------------------------- WFDB records

def read_wfdb(path: str | Path, record_id: str | None = None) -> tuple[np.ndarray, float, list[str]]:
    """Reads a WFDB record (``path`` without extension) as ``((leads, T) float32 mV, fs, lead_names)``.

    The header is parsed once, as text. Plain format-16 records (PTB-XL, most
    12-lead sets) are decoded here with numpy, bit for bit as wfdb.rdrecord
    does; every other record (format 212, 24, FLAC, skew, several samples per
    frame, multi-segment) is read by wfdb.rdrecord. Why: wfdb-python spends
    ~13 ms parsing a header, twice per record through rdheader + rdrecord,
    which made a first PTB-XL preparation take minutes.

    Every failure (missing or truncated ``.dat``, a header that does not match
    its data, an unreadable header) becomes ``BadRecord`` naming the record and
    the reason, so loaders can skip-and-report it.
    """
    path = Path(path)
    rid = record_id or path.name
    hea = path.parent / f"{path.name}.hea"  # not with_suffix: record names may contain dots
    if not hea.exists():
        raise BadRecord(rid, f"header file {hea.name} not found")
    h = parse_header(hea.read_text(errors="replace"), rid)
    if h.n_segments:
        return _rdrecord(path, h, rid)
    if h.n_sig == 0:
        raise BadRecord(rid, f"header {hea.name} lists no signals")
    _check_wfdb_files(h, path.parent, rid)
    if not _plain_format16(h):
        return _rdrecord(path, h, rid)
    return _decode_format16(path.parent / h.file_names[0], h, rid), h.fs, list(h.lead_names)


def _plain_format16(h: Header) -> bool:
    """One little-endian 16-bit file holding every signal, one sample per frame, no skew."""
    return (h.n_samples is not None and set(h.formats) == {"16"} and len(set(h.file_names)) == 1
            and not h.file_names[0].startswith("~") and set(h.samples_per_frame) == {1} and not any(h.skews))


def _decode_format16(dat: Path, h: Header, rid: str) -> np.ndarray:
    """Format 16 with numpy: interleaved int16 frames -> mV as wfdb's dac computes it
    ((digital - baseline) / gain, float32) with the invalid value -32768 as NaN."""
    n = h.n_sig * h.n_samples
    d = np.fromfile(dat, dtype="<i2", count=n, offset=h.byte_offsets[0])
    if d.size != n:
        raise BadRecord(rid, f"signal file {dat.name} holds {d.size} samples, header needs {n}")
    d = d.reshape(h.n_samples, h.n_sig).T
    base = np.asarray(h.baselines, dtype=np.float64)[:, None]
    gain = np.asarray(h.gains, dtype=np.float64)[:, None]
    x = ((d - base) / gain).astype(np.float32)
    x[d == WFDB_INVALID_16] = np.nan
    return x


def _rdrecord(path: Path, h: Header, rid: str) -> tuple[np.ndarray, float, list[str]]:
    """The general case: wfdb.rdrecord (it parses the header again; only rare formats come here)."""
    import wfdb  # local: keeps `import erts.data` light

    try:
        rec = wfdb.rdrecord(str(path), physical=True, return_res=32)
    except Exception as e:  # wfdb raises a mix of ValueError/IndexError/KeyError on bad files
        raise BadRecord(rid, f"cannot read signal: {type(e).__name__}: {e}") from None
    if rec.p_signal is None:
        raise BadRecord(rid, "cannot read signal: wfdb returned no uniform signal (signals at different rates?)")
    x = np.asarray(rec.p_signal, dtype=np.float32).T
    if x.shape[0] != h.n_sig or (h.n_samples is not None and x.shape[1] != h.n_samples):
        raise BadRecord(rid, f"signal shape {x.shape} does not match header ({h.n_sig} leads, {h.n_samples} samples)")
    return x, float(rec.fs), [str(n) for n in rec.sig_name]


def _check_wfdb_files(h: Header, folder: Path, rid: str) -> None:
    """Checks every signal file exists and holds at least the samples the header promises.

    Why: on a short file wfdb-python fails with an opaque numpy broadcasting
    error, so truncation is caught from the byte count with a clear reason.
    """
    by_file: dict[str, list[int]] = {}
    for i, fname in enumerate(h.file_names):
        by_file.setdefault(fname, []).append(i)
    for fname, idx in by_file.items():
        if fname.startswith("~"):
            continue  # no file: a null signal
        f = folder / fname
        if not f.exists():
            raise BadRecord(rid, f"signal file {fname} not found")
        fmt = h.formats[idx[0]]
        if fmt not in BITS or h.n_samples is None:
            continue  # compressed/rare formats: let wfdb decide
        per_frame = sum(h.samples_per_frame[i] for i in idx)
        need = h.byte_offsets[idx[0]] + (h.n_samples * per_frame * BITS[fmt] + 7) // 8
        size = f.stat().st_size
        if size < need:
            raise BadRecord(rid, f"signal file {fname} is truncated: {size} bytes, header needs {need} "
                                 f"({len(idx)} signal(s) x {h.n_samples} samples, format {fmt})")


# --------------------------------------------------------------------------- WFDB headers as text

@dataclass
class Header:
    """A WFDB header parsed as text: record line, one entry per signal, comments."""

    record_name: str
    n_sig: int
    fs: float
    n_samples: int | None
    n_segments: int = 0  # > 0: a multi-segment record (its lines list segments, not signals)
    file_names: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)  # "16", "212", ... (without spf/skew/offset)
    samples_per_frame: list[int] = field(default_factory=list)
    skews: list[int] = field(default_factory=list)
    byte_offsets: list[int] = field(default_factory=list)
    gains: list[float] = field(default_factory=list)  # ADC units per physical unit
    baselines: list[float] = field(default_factory=list)  # ADC value of 0 physical units
    units: list[str] = field(default_factory=list)
    lead_names: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # '#' lines, without the '#'


def parse_header(text: str, record_id: str) -> Header:
    """Parses a WFDB ``.hea`` as text; malformed lines -> BadRecord.

    Only the fields loaders need are kept. Date/time fields of the record line
    are ignored on purpose (some Challenge headers carry dates wfdb rejects).
    Defaults follow wfdb-python: a zero or missing gain is 200, a missing
    baseline is the ADC zero.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    comments = [ln[1:].strip() for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    if not body:
        raise BadRecord(record_id, "empty header")
    rec = body[0].split()
    try:
        name, _, n_seg = rec[0].partition("/")
        n_sig = int(rec[1])
        fs = float(rec[2].split("/")[0].split("(")[0]) if len(rec) > 2 else 250.0
        n_samples = int(rec[3]) if len(rec) > 3 else None
        n_segments = int(n_seg) if n_seg else 0
    except (IndexError, ValueError):
        raise BadRecord(record_id, f"malformed header record line {body[0]!r}") from None
    h = Header(record_name=name, n_sig=n_sig, fs=fs, n_samples=n_samples, n_segments=n_segments, comments=comments)
    if n_segments:
        return h  # the signals are described in the segments' own headers
    if len(body) - 1 < n_sig:
        raise BadRecord(record_id, f"header lists {len(body) - 1} signal lines, record line says {n_sig}")
    for ln in body[1:1 + n_sig]:
        _parse_signal_line(ln, h, record_id)
    return h


def _parse_signal_line(line: str, h: Header, record_id: str) -> None:
    tok = line.split(maxsplit=8)  # the description (lead name) is the rest of the line, spaces kept
    try:
        fmt = _FORMAT.fullmatch(tok[1])
        if fmt is None:
            raise ValueError(tok[1])
        h.file_names.append(tok[0])
        h.formats.append(fmt[1])
        h.samples_per_frame.append(int(fmt[2] or 1))
        h.skews.append(int(fmt[3] or 0))
        h.byte_offsets.append(int(fmt[4] or 0))
        gain_tok = tok[2] if len(tok) > 2 else ""
        gain_part, _, unit = gain_tok.partition("/")
        gain_str, _, base_str = gain_part.partition("(")
        gain = float(gain_str) if gain_str else 0.0
        adc_zero = float(tok[4]) if len(tok) > 4 else 0.0
        h.gains.append(gain if gain != 0 else DEFAULT_GAIN)
        h.baselines.append(float(base_str.rstrip(")")) if base_str else adc_zero)
        h.units.append(unit or "mV")
        h.lead_names.append(tok[8] if len(tok) > 8 else f"ch{len(h.lead_names)}")
    except (IndexError, ValueError):
        raise BadRecord(record_id, f"malformed header signal line {line!r}") from None


def parse_dx(comments: list[str]) -> list[str]:
    """Diagnosis codes from ``Dx: a,b`` comment lines (with or without the leading '#')."""
    codes: list[str] = []
    for c in comments:
        c = c.lstrip("#").strip()
        key, sep, value = c.partition(":")
        if sep and key.strip().lower() == "dx":
            codes += [v.strip() for v in value.split(",") if v.strip()]
    return codes


# --------------------------------------------------------------------------- Challenge-style .hea + .mat

def decode_challenge_mat(hea_text: str, mat_bytes: bytes, record_id: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    """Decodes a Challenge record from its header text and MATLAB v4 ``.mat`` bytes.

    Returns ``((leads, T) float32 mV, fs, lead_names, header_comments)``. The
    ``val`` variable (ADC units) is converted with each lead's gain and
    baseline from the header; its shape must match the header exactly.
    """
    h = parse_header(hea_text, record_id)
    if h.n_segments:
        raise BadRecord(record_id, "a multi-segment header cannot describe a .mat record")
    import scipy.io  # here, not at import: a load from the cache never reads a .mat

    try:
        mat = scipy.io.loadmat(io.BytesIO(mat_bytes))
    except Exception as e:  # truncated/garbled files raise ValueError, OSError, TypeError...
        reason = str(e).split(";")[0]  # scipy appends long advice after ';'
        raise BadRecord(record_id, f"unreadable .mat file, truncated or corrupt ({type(e).__name__}: {reason})") from None
    if "val" not in mat:
        raise BadRecord(record_id, f".mat file has no variable 'val' (found: {sorted(k for k in mat if not k.startswith('__'))})")
    val = np.asarray(mat["val"])
    if val.ndim == 1:
        val = val[None, :]
    if val.ndim != 2 or val.shape[0] != h.n_sig:
        raise BadRecord(record_id, f".mat 'val' has shape {val.shape}, header says {h.n_sig} leads")
    if h.n_samples is not None and val.shape[1] != h.n_samples:
        raise BadRecord(record_id, f".mat 'val' has {val.shape[1]} samples, header says {h.n_samples} (truncated or mismatched)")
    gains = np.asarray(h.gains, dtype=np.float64)[:, None]
    base = np.asarray(h.baselines, dtype=np.float64)[:, None]
    x = ((val.astype(np.float64) - base) / gains).astype(np.float32)
    return x, h.fs, h.lead_names, h.comments


def read_challenge_mat(hea_path: str | Path, record_id: str | None = None) -> tuple[np.ndarray, float, list[str], list[str]]:
    """Reads a Challenge-style record from disk (``X.hea`` + the ``.mat`` its header names).

    Returns ``((leads, T) float32 mV, fs, lead_names, header_comments)``.
    """
    hea_path = Path(hea_path)
    rid = record_id or hea_path.stem
    if not hea_path.exists():
        raise BadRecord(rid, f"header file {hea_path.name} not found")
    text = hea_path.read_text(errors="replace")
    h = parse_header(text, rid)
    mat_path = hea_path.parent / (h.file_names[0] if h.file_names else hea_path.stem + ".mat")
    if not mat_path.exists():
        raise BadRecord(rid, f"signal file {mat_path.name} not found")
    return decode_challenge_mat(text, mat_path.read_bytes(), rid)


# --------------------------------------------------------------------------- folder-or-zip sources

class Source:
    """A dataset root that is either a folder or a ``.zip`` of it, read the same way.

    Why: PhysioNet downloads come as zips; reading members straight from the
    archive avoids extracting thousands of small files. Names are relative
    POSIX paths (inside a zip: the member names, e.g. ``training2017/A00001.hea``).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"dataset root {self.root} does not exist")
        self.is_zip = self.root.is_file() and zipfile.is_zipfile(self.root)
        if self.root.is_file() and not self.is_zip:
            raise DataError(f"dataset root {self.root} is a file but not a zip archive")
        try:
            self._zip = zipfile.ZipFile(self.root) if self.is_zip else None
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"dataset root {self.root}: unreadable zip archive ({e})") from None
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        """All file names (sorted), relative to the root."""
        if self._names is None:
            if self._zip is not None:
                self._names = sorted(i.filename for i in self._zip.infolist() if not i.is_dir())
            else:
                self._names = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return self._names

    def find(self, filename: str) -> str | None:
        """The shortest name whose last component is ``filename`` (None if absent)."""
        hits = [n for n in self.names() if PurePosixPath(n).name == filename]
        return min(hits, key=lambda n: (n.count("/"), n)) if hits else None

    def read_bytes(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.root / name).read_bytes()

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8", errors="replace")

    def fingerprint(self) -> list:
        """Cheap identity of the source for cache keys: the archive's size/mtime, or every file's."""
        from erts.data.cache import files_fingerprint

        if self._zip is not None:
            return files_fingerprint([self.root])
        return files_fingerprint([self.root / n for n in self.names()])

    def extract(self, names: list[str], dest: str | Path) -> Path:
        """Copies ``names`` into ``dest`` flat (by base name) and returns ``dest``.

        For readers that need real files (wfdb.rdrecord); a folder source is
        copied too, so ``dest`` is always a self-contained record folder.
        """
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for n in names:
            target = dest / PurePosixPath(n).name
            if self._zip is not None:
                with self._zip.open(n) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            else:
                shutil.copyfile(self.root / n, target)
        return dest

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable, desc: str, total: int | None = None):
    """Record-preparation progress on stderr (a bar on a terminal, plain lines otherwise); ``ERTS_QUIET=1`` turns it off."""
    from erts.progress import progress as _progress

    return _progress(iterable, desc, total=total, unit="rec")
