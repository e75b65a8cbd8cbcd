"""Tests of the built-in synthetic 12-lead ECG dataset (erts.data.synthetic)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

from erts.config import DataConfig
from erts.data import load_dataset
from erts.data import synthetic
from erts.data.synthetic import CLASS_NAMES, LEAD_NAMES, generate, load

LEAD = {name: i for i, name in enumerate(LEAD_NAMES)}


@pytest.fixture(scope="module")
def raw():
    """One raw (millivolt, unstandardised) set at 250 Hz, shared by the morphology tests."""
    return generate(400, seed=3, corrupt_frac=0.15, fs=250.0, length_s=6.0)


def test_same_seed_same_arrays_other_seed_differs():
    a = generate(60, seed=11)
    b = generate(60, seed=11)
    c = generate(60, seed=12)
    np.testing.assert_array_equal(a.signals, b.signals)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.split, b.split)
    assert a.meta.equals(b.meta)
    assert not np.array_equal(a.signals, c.signals)
    assert not np.array_equal(a.labels, c.labels)


def test_shapes_dtypes_and_names(tmp_path):
    rs = load(DataConfig(n_records=200, cache_dir=str(tmp_path)))
    assert rs.signals.shape == (200, 12, 1000)  # defaults: 100 Hz x 10 s
    assert rs.signals.dtype == np.float32 and rs.labels.dtype == np.int64
    assert rs.fs == 100.0 and rs.lead_names == LEAD_NAMES and rs.class_names == CLASS_NAMES
    assert rs.record_ids[0] == "syn00001" and rs.record_ids[-1] == "syn00200"
    assert len(set(rs.record_ids)) == 200
    assert set(rs.meta.columns) >= {"true_class", "corruption", "heart_rate"}
    assert np.isfinite(rs.signals).all()
    # standardize=True (default): every lead of every record has zero mean, unit variance
    np.testing.assert_allclose(rs.signals.mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(rs.signals.std(-1), 1, atol=1e-3)
    other = load(DataConfig(n_records=50, fs=250, length_s=4, cache_dir=str(tmp_path)))
    assert other.signals.shape == (50, 12, 1000) and other.fs == 250.0


def test_registered_as_default_dataset(tmp_path):
    cfg = DataConfig(n_records=40, cache_dir=str(tmp_path))
    assert cfg.dataset == "synthetic"
    assert load_dataset(cfg).name == "synthetic"


@pytest.mark.parametrize("n, frac", [(400, 0.15), (333, 0.1), (250, 0.0)])
def test_class_and_corruption_counts_are_exact(n, frac):
    rs = generate(n, seed=5, corrupt_frac=frac, length_s=3.0)
    true = rs.meta["true_class"].value_counts()
    for name, share in zip(CLASS_NAMES, synthetic.CLASS_FRACTIONS):
        assert abs(true[name] - share * n) < 1  # largest-remainder rounding of the documented shares
    assert true.sum() == n
    kinds = rs.meta["corruption"].value_counts()
    n_bad = int(np.floor(frac * n + 0.5))
    assert kinds.get("none", 0) == n - n_bad
    per_kind = [kinds.get(k, 0) for k in synthetic.CORRUPTIONS]
    assert sum(per_kind) == n_bad and max(per_kind) - min(per_kind) <= 1


def test_meta_flags_are_consistent(raw):
    label = np.array(CLASS_NAMES)[raw.labels]
    m = raw.meta
    flip = (m["corruption"] == "label_flip").to_numpy()
    assert flip.sum() == 20
    assert (label[flip] != m["true_class"][flip]).all()
    assert (label[~flip] == m["true_class"][~flip]).all()
    amb = (m["corruption"] == "ambiguous").to_numpy()
    assert (m["mixed_with"][amb] != m["true_class"][amb]).all()
    assert set(m["mixed_with"][amb]) <= set(CLASS_NAMES)
    assert (m["mixed_with"][~amb] == "none").all()
    assert (m["snr_db"][m["corruption"] == "noise"] < 0).all()
    assert (m["snr_db"][m["corruption"] != "noise"] > 0).all()
    assert m["heart_rate"].between(40, 135).all()
    mi = (m["true_class"] == "MI").to_numpy() & ~amb
    assert set(m["mi_territory"][mi]) == {"inferior", "anterior"}
    assert (m["mi_territory"][~(mi | amb)] == "none").all()


def test_splits_are_stratified_70_15_15(raw):
    counts = {s: len(raw.indices(s)) for s in ("train", "val", "test")}
    assert sum(counts.values()) == 400
    for s, share in zip(("train", "val", "test"), synthetic.SPLIT_FRACTIONS):
        assert abs(counts[s] - share * 400) <= 1
    m = raw.meta
    for s, share in zip(("train", "val", "test"), synthetic.SPLIT_FRACTIONS):
        for name, n_class in m["true_class"][m["corruption"] == "none"].value_counts().items():
            n_in = ((m["true_class"] == name) & (m["corruption"] == "none") & (raw.split == s)).sum()
            assert abs(n_in - share * n_class) <= 1.5, (s, name)  # stratified by class
        for kind in synthetic.CORRUPTIONS:  # 20 records of each kind: 14 / 3 / 3 (+-1)
            assert abs(((m["corruption"] == kind) & (raw.split == s)).sum() - share * 20) <= 1, (s, kind)
    again = generate(400, seed=3, corrupt_frac=0.15, fs=250.0, length_s=6.0)
    np.testing.assert_array_equal(raw.split, again.split)


def test_multilabel_variant():
    rs = generate(400, seed=2, corrupt_frac=0.0, multilabel=True, length_s=3.0)
    assert rs.multilabel and rs.labels.shape == (400, 5) and rs.labels.dtype == np.float32
    assert set(np.unique(rs.labels)) == {0.0, 1.0}
    k = rs.labels.sum(1)
    assert set(np.unique(k)) == {1.0, 2.0}
    norm = rs.labels[:, 0] == 1
    assert (k[norm] == 1).all()  # NORM excludes every other label
    pairs = {tuple(np.array(CLASS_NAMES)[np.flatnonzero(row)]) for row in rs.labels[k == 2]}
    allowed = {tuple(sorted((CLASS_NAMES[a], CLASS_NAMES[b]), key=CLASS_NAMES.index))
               for a, bs in synthetic.PARTNERS.items() for b in bs}
    assert pairs <= allowed and len(pairs) >= 3
    eligible = 400 - int(0.4 * 400)
    assert (k == 2).sum() == int(np.floor(synthetic.COOCCUR_FRAC * eligible + 0.5))
    names = ["+".join(np.array(CLASS_NAMES)[np.flatnonzero(row)]) for row in rs.labels]
    assert (rs.meta["true_class"].to_numpy() == np.array(names)).all()


def test_multilabel_flip_gives_a_class_outside_the_true_set():
    rs = generate(300, seed=4, corrupt_frac=0.3, multilabel=True, length_s=3.0)
    flip = (rs.meta["corruption"] == "label_flip").to_numpy()
    assert flip.sum() == 30
    for row, true in zip(rs.labels[flip], rs.meta["true_class"][flip]):
        assert row.sum() == 1 and CLASS_NAMES[int(row.argmax())] not in true.split("+")


def test_cache_hit_is_a_memmap_and_does_not_regenerate(tmp_path, monkeypatch):
    cfg = DataConfig(n_records=80, corrupt_frac=0.2, length_s=4, cache_dir=str(tmp_path))
    first = load(cfg)
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("cache miss on the second load"))
    second = load(cfg)
    assert isinstance(second.signals, np.memmap)
    np.testing.assert_array_equal(first.signals, second.signals)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.meta.equals(second.meta)
    # every generation parameter is part of the key: a change is a new entry, not a stale hit
    monkeypatch.undo()
    changed = load(DataConfig(n_records=80, corrupt_frac=0.2, length_s=4, standardize=False, cache_dir=str(tmp_path)))
    assert not np.array_equal(first.signals, changed.signals)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="task"):
        load(DataConfig(task="superdiagnostic"))
    with pytest.raises(ValueError, match="n_records"):
        generate(5)
    with pytest.raises(ValueError, match="corrupt_frac"):
        generate(100, corrupt_frac=1.0)


def test_limb_lead_relations_hold_exactly(raw):
    x = raw.signals
    i, ii = x[:, LEAD["I"]], x[:, LEAD["II"]]
    np.testing.assert_allclose(x[:, LEAD["III"]], ii - i, atol=1e-5)
    np.testing.assert_allclose(x[:, LEAD["aVR"]], -(i + ii) / 2, atol=1e-5)
    np.testing.assert_allclose(x[:, LEAD["aVL"]], i - ii / 2, atol=1e-5)
    np.testing.assert_allclose(x[:, LEAD["aVF"]], ii - i / 2, atol=1e-5)


# ---------------------------------------------------------------- class cues, on noise-light records

def _quiet(rs, name: str, key: str = "true_class") -> np.ndarray:
    m = rs.meta
    return np.flatnonzero((m[key] == name) & (m["corruption"] == "none") & (m["snr_db"] > 15))


def _r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """R peaks of one (12, T) record: maxima of the summed absolute slope across leads."""
    energy = np.abs(np.diff(x, axis=1)).sum(0)
    peaks, _ = find_peaks(energy, distance=int(0.35 * fs), height=0.4 * np.percentile(energy, 99))
    return peaks[(peaks > 0.3 * fs) & (peaks < x.shape[1] - 0.5 * fs)]


def _st_level(x: np.ndarray, fs: float, lead: str) -> float:
    """Mean ST level (R+80..R+100 ms) against the PR segment (R-90..R-70 ms) over all beats, in mV."""
    p = _r_peaks(x, fs)
    st = np.mean([x[LEAD[lead], r + int(0.08 * fs): r + int(0.10 * fs)].mean() for r in p])
    pr = np.mean([x[LEAD[lead], r - int(0.09 * fs): r - int(0.07 * fs)].mean() for r in p])
    return st - pr


def _qrs_width(x: np.ndarray, fs: float) -> float:
    """Seconds per beat during which the summed slope exceeds 20% of its peak: a QRS duration proxy."""
    energy = np.abs(np.diff(x, axis=1)).sum(0)
    busy = energy > 0.2 * np.percentile(energy, 99)
    return busy.sum() / fs / max(len(_r_peaks(x, fs)), 1)


def test_hyp_has_higher_qrs_voltage_than_norm(raw):
    def sokolow(i: int) -> float:
        x = raw.signals[i]
        return np.ptp(x[LEAD["V1"]]) + np.ptp(x[LEAD["V5"]])

    hyp = [sokolow(i) for i in _quiet(raw, "HYP")]
    norm = [sokolow(i) for i in _quiet(raw, "NORM")]
    assert len(hyp) >= 10 and len(norm) >= 30
    assert np.mean(hyp) > 1.4 * np.mean(norm)


def test_cd_has_wider_qrs_than_norm(raw):
    cd = [_qrs_width(raw.signals[i], raw.fs) for i in _quiet(raw, "CD")]
    norm = [_qrs_width(raw.signals[i], raw.fs) for i in _quiet(raw, "NORM")]
    assert len(cd) >= 10
    assert np.median(cd) > 1.3 * np.median(norm)


def test_mi_has_st_elevation_in_its_territory(raw):
    norm = _quiet(raw, "NORM")
    for territory, lead in (("inferior", "aVF"), ("anterior", "V2")):
        mi = _quiet(raw, territory, key="mi_territory")
        assert len(mi) >= 3
        st_mi = np.mean([_st_level(raw.signals[i], raw.fs, lead) for i in mi])
        st_norm = np.mean([_st_level(raw.signals[i], raw.fs, lead) for i in norm])
        assert st_mi > st_norm + 0.05, (territory, st_mi, st_norm)


def test_sttc_has_st_depression_in_lateral_leads(raw):
    st_sttc = np.mean([_st_level(raw.signals[i], raw.fs, "V5") for i in _quiet(raw, "STTC")])
    st_norm = np.mean([_st_level(raw.signals[i], raw.fs, "V5") for i in _quiet(raw, "NORM")])
    assert st_sttc < st_norm - 0.03, (st_sttc, st_norm)


def test_noise_records_are_dominated_by_broadband_noise(raw):
    def roughness(i: int) -> float:  # high-frequency energy relative to the signal's size
        x = raw.signals[i]
        return float(np.abs(np.diff(x, n=2, axis=1)).mean() / x.std())

    noisy = [roughness(i) for i in np.flatnonzero(raw.meta["corruption"] == "noise")]
    quiet = [roughness(i) for i in np.flatnonzero((raw.meta["corruption"] == "none") & (raw.meta["snr_db"] > 15))]
    assert np.median(noisy) > 2 * np.median(quiet)
