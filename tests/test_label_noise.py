"""label_noise=: a seeded, exact share of the training labels flipped, recorded as ground truth, validation
and test untouched; and the reliability table reading that ground truth for every reliability setting."""
import numpy as np
import pandas as pd
import pytest

from conftest import tiny_overrides
from erts.config import ConfigError, load_config
from erts.data import load_dataset
from erts.errors import DataError
from erts.report import reliability as rel
from erts.train.loop import train


def data(cache_dir, **extra):
    cfg = load_config(overrides={"n_records": 240, "length_s": 2.0, "corrupt_frac": 0.2, "cache_dir": str(cache_dir), **extra})
    return load_dataset(cfg.data)


def test_symmetric_noise_flips_an_exact_share_of_training_labels_only(cache_dir):
    clean = data(cache_dir)
    noisy = data(cache_dir, label_noise="symmetric", label_noise_rate=0.2, label_noise_seed=1)
    train = clean.split == "train"
    changed = noisy.labels != clean.labels
    assert changed.sum() == round(0.2 * train.sum()) and not changed[~train].any()  # val and test untouched
    np.testing.assert_array_equal(noisy.meta["noise_flipped"].to_numpy(), changed)
    np.testing.assert_array_equal(noisy.meta["label_clean"].to_numpy(), np.array(clean.class_names)[clean.labels])
    # the flips reach every other class, and the dataset's own columns are kept
    assert len(set(zip(clean.labels[changed], noisy.labels[changed]))) > clean.num_classes
    assert "corruption" in noisy.meta.columns
    again = data(cache_dir, label_noise="symmetric", label_noise_rate=0.2, label_noise_seed=1)
    other = data(cache_dir, label_noise="symmetric", label_noise_rate=0.2, label_noise_seed=2)
    np.testing.assert_array_equal(again.labels, noisy.labels)
    assert (other.labels != noisy.labels).any()


def test_pair_noise_swaps_the_two_classes_at_the_rate_of_each(cache_dir):
    clean = data(cache_dir)
    a, b = clean.class_names[0], clean.class_names[2]
    noisy = data(cache_dir, label_noise="pair", label_noise_rate=0.25, label_noise_classes=f"[{a}, {b}]")
    train = clean.split == "train"
    changed = noisy.labels != clean.labels
    for src, dst in ((0, 2), (2, 0)):
        members = train & (clean.labels == src)
        assert (changed & members).sum() == round(0.25 * members.sum())
        assert (noisy.labels[changed & members] == dst).all()
    assert not changed[train & ~np.isin(clean.labels, [0, 2])].any() and not changed[~train].any()


def test_label_noise_settings_are_checked(cache_dir):
    with pytest.raises(ConfigError, match="label_noise_classes"):
        load_config(overrides={"label_noise": "pair"})
    with pytest.raises(ConfigError, match="label_noise_rate"):
        load_config(overrides={"label_noise": "symmetric", "label_noise_rate": 0})
    with pytest.raises(DataError, match="no class 'X'"):
        data(cache_dir, label_noise="pair", label_noise_classes="[NORM, X]")


@pytest.mark.parametrize("setting", [{"reliability": "loss"},
                                     {"reliability": "diffuse", "focus_measure": "mass", "focus_filter": "threshold"}])
def test_reliability_table_counts_the_filter_on_injected_noise(cache_dir, tmp_path, one_thread, setting):
    """Every reliability setting logs the candidates it ranked (filter_cand), so the table counts its
    drops of the flipped and the clean records; checked against the selection logs read by hand."""
    train(load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", name="r", tau=0.6,
                                               label_noise="symmetric", label_noise_rate=0.3, **setting)))
    run = tmp_path / "r"
    records = pd.read_csv(run / "train_records.csv").set_index("index")
    assert records["noise_flipped"].sum() > 0
    flipped = records["noise_flipped"].astype(bool)
    cand = drop = None
    n = {True: [0, 0], False: [0, 0]}
    log = pd.read_csv(run / "log.csv")
    for epoch in log.index[log.phase == "select"]:
        s = np.load(run / "selection" / f"epoch_{epoch:03d}.npz")
        cand = s["filter_cand"]
        drop = cand & ~s["erts_keep"]
        for i, c, d in zip(s["index"], cand, drop):
            n[bool(flipped[i])][0] += int(c)
            n[bool(flipped[i])][1] += int(d)
        if setting["reliability"] == "loss":
            assert not np.isfinite(s["focus"]).any()  # no Grad-CAM: the table could not rely on focus
    t = rel.reliability_table({"r": [run]}, n_boot=50, truth="noise_flipped")
    row = t[(t.which == "focus_filter") & (t.scope == "overall")].iloc[0]
    assert (row.n_relabelled_candidates, row.relabelled_dropped) == tuple(n[True])
    assert (row.n_unchanged_candidates, row.unchanged_dropped) == tuple(n[False])
    assert row.relabelled_drop_rate == pytest.approx(n[True][1] / n[True][0])
    assert n[True][0] + n[False][0] > 0 and n[True][1] + n[False][1] > 0
    assert rel.reliability_table({"r": [run]}, n_boot=0).empty  # no label_changed column: no rows


def test_flipped_labels_are_the_ground_truth_of_reports_and_the_audit(cache_dir):
    """With label_noise= the flipped records are what is wrong in the labels the run trains on: they take
    precedence over the synthetic set's own corruption column in every reader of ground truth."""
    from erts.audit.core import dataset_truth
    from erts.data.truth import ground_truth

    noisy = data(cache_dir, label_noise="symmetric", label_noise_rate=0.2, label_noise_seed=1)
    train_ids = noisy.indices("train")
    wrong, what = dataset_truth(noisy, train_ids)
    np.testing.assert_array_equal(wrong, noisy.meta["noise_flipped"].to_numpy()[train_ids])
    assert "label_noise" in what
    assert (wrong != (noisy.meta["corruption"].to_numpy()[train_ids] != "none")).any()  # not the corruption
    as_text = noisy.meta[["noise_flipped"]].astype(str)  # as read back from train_records.csv
    assert (ground_truth(as_text) == "label flipped").to_numpy().tolist() == noisy.meta["noise_flipped"].tolist()
    clean = data(cache_dir)
    plain, what = dataset_truth(clean, clean.indices("train"))
    assert what == "corrupted on purpose"
    np.testing.assert_array_equal(plain, clean.meta["corruption"].to_numpy()[clean.indices("train")] != "none")
