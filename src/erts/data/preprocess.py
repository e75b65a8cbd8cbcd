"""Record checks and preprocessing shared by every real-dataset loader.

Why one module: "bad input gets a clear error" must mean the same thing for every
dataset. Each check raises BadRecord with the record name and the reason; the
loader then skips-and-reports or fails, as ``DataConfig.bad_records`` says.
Nothing is ever zero-filled silently. scipy.signal is imported where a record is
filtered or resampled, not at import: it takes over a second to import, and a
load from the cache (which imports the loaders) never filters anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from erts.errors import DataError


class BadRecord(DataError):
    """A record that cannot be used, with its name and the reason."""

    def __init__(self, record_id: str, reason: str):
        super().__init__(f"{record_id}: {reason}")
        self.record_id = record_id
        self.reason = reason


@dataclass
class BadRecordLog:
    """Collects skipped records; with policy 'fail' it re-raises the first one."""

    policy: str = "skip"
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def handle(self, err: BadRecord) -> None:
        if self.policy == "fail":
            raise err
        self.skipped.append((err.record_id, err.reason))


def check_rate(fs: float, expected: float, record_id: str, why: str = "") -> None:
    """A header whose sampling rate is not the dataset's is a BadRecord, never resampled:
    such a header is wrong about its data (resampling would stretch the record in time, or
    shrink it and zero-pad the rest). ``why`` says where the expected rate comes from."""
    if fs != expected:
        raise BadRecord(record_id, f"sampling rate {fs:g} Hz, expected {expected:g} Hz" + (f" {why}" if why else ""))


def _lead(i: int, lead_names: list[str] | None) -> str:
    """A lead's name for messages (its index only when the names are unknown)."""
    return str(lead_names[i]) if lead_names is not None and i < len(lead_names) else f"#{i}"


def check_signal(x: np.ndarray, record_id: str, *, expected_leads: int | None = None,
                 nan_policy: str = "reject", lead_names: list[str] | None = None) -> np.ndarray:
    """Validates a (leads, T) signal; returns it (NaNs interpolated if allowed).

    ``lead_names`` (the record's, in row order) name the leads in messages."""
    if x.ndim != 2 or x.shape[1] == 0:
        raise BadRecord(record_id, f"signal has shape {x.shape}, expected (leads, samples)")
    if expected_leads is not None and x.shape[0] != expected_leads:
        raise BadRecord(record_id, f"has {x.shape[0]} leads, expected {expected_leads}")
    x = np.asarray(x, dtype=np.float32)
    nans = ~np.isfinite(x)
    if nans.any():
        if nan_policy != "interpolate":
            raise BadRecord(record_id, f"{int(nans.sum())} NaN/inf samples (set nan_policy=interpolate to fill them)")
        x = _interpolate_nans(x, record_id, lead_names)
    flat = [_lead(i, lead_names) for i in range(x.shape[0]) if np.ptp(x[i]) == 0]
    if flat:
        raise BadRecord(record_id, f"flat lead(s) {', '.join(flat)} (constant signal)")
    return x


def _interpolate_nans(x: np.ndarray, record_id: str, lead_names: list[str] | None = None) -> np.ndarray:
    out = x.copy()
    t = np.arange(x.shape[1])
    for i in range(x.shape[0]):
        ok = np.isfinite(out[i])
        if ok.sum() < 2:
            raise BadRecord(record_id, f"lead {_lead(i, lead_names)} has fewer than 2 finite samples")
        out[i, ~ok] = np.interp(t[~ok], t[ok], out[i, ok])
    return out


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling (anti-aliased) along time."""
    if fs_in == fs_out:
        return x
    from fractions import Fraction

    from scipy import signal as sps

    frac = Fraction(fs_out / fs_in).limit_denominator(1000)
    return sps.resample_poly(x, frac.numerator, frac.denominator, axis=-1).astype(np.float32)


def bandpass(x: np.ndarray, fs: float, low: float, high: float, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth band-pass (second-order sections, numerically stable).

    ``high`` is capped at 0.45 fs; a band with nothing left below the cap is a DataError."""
    cap = min(high, 0.45 * fs)
    if not 0 < low < cap:
        raise DataError(f"bandpass=[{low:g}, {high:g}] cannot be applied at {fs:g} Hz: low must be > 0 and below "
                        f"high and below {0.45 * fs:g} Hz (0.45 x fs)")
    high = cap
    from scipy import signal as sps

    sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    return sps.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


def standardize(x: np.ndarray) -> np.ndarray:
    """Per-lead zero mean, unit variance (leads with zero variance stay zero-mean)."""
    mu = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    return ((x - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def crop_or_pad(x: np.ndarray, length: int, policy: str = "center", rng: np.random.Generator | None = None) -> np.ndarray:
    """Crops (``policy`` center, start, or random with ``rng``) or zero-pads at the end to ``length`` samples.

    Padding is explicit and documented: records shorter than the target are padded
    with zeros after standardisation, i.e. with the lead's mean.
    """
    t = x.shape[-1]
    if t == length:
        return x
    if t > length:
        if policy == "start":
            start = 0
        elif policy == "random" and rng is not None:
            start = int(rng.integers(0, t - length + 1))
        else:
            start = (t - length) // 2
        return x[..., start:start + length]
    out = np.zeros(x.shape[:-1] + (length,), dtype=x.dtype)
    out[..., :t] = x
    return out


def preprocess(x: np.ndarray, fs_in: float, cfg, record_id: str, *, expected_leads: int | None = None,
               rng: np.random.Generator | None = None, lead_names: list[str] | None = None) -> tuple[np.ndarray, float]:
    """Check -> resample -> band-pass -> standardise -> crop/pad, as set in a DataConfig.

    Returns the processed (leads, T) float32 signal and its sampling rate. Records
    longer than ``length_s`` are cut where ``length_from`` says (centre, or the start as
    the published CPSC code did), or at an offset drawn from ``rng`` when a loader passes
    one. The cache is deterministic; random training crops are cut later, per batch, by
    the training loop (``crop_s``).
    """
    x = check_signal(x, record_id, expected_leads=expected_leads, nan_policy=cfg.nan_policy, lead_names=lead_names)
    fs = float(cfg.fs or fs_in)
    x = resample(x, fs_in, fs)
    if cfg.bandpass:
        x = bandpass(x, fs, cfg.bandpass[0], cfg.bandpass[1])
    if cfg.standardize == "record":
        x = standardize(x)
    if cfg.length_s:
        x = crop_or_pad(x, int(round(cfg.length_s * fs)), "random" if rng is not None else cfg.length_from, rng)
    return x, fs
