"""exclude_records=: training records set aside by a list (e.g. `erts audit`'s most suspicious), validation
and test never changed, every listed record accounted for; a run keeps its own copy of the list."""
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_overrides
from erts.config import ConfigError, load_config
from erts.data import load_dataset
from erts.data.records import EXCLUDED
from erts.errors import DataError
from erts.train.loop import load_config_from_run, resume, train

SMALL = {"n_records": 240, "length_s": 2.0, "corrupt_frac": 0.2}


def data(cache_dir, **extra):
    return load_dataset(load_config(overrides={**SMALL, "cache_dir": str(cache_dir), **extra}).data)


def write_list(path, ids, **columns):
    pd.DataFrame({"record_id": ids, **columns}).to_csv(path, index=False)
    return str(path)


def test_listed_training_records_are_set_aside_and_nothing_else_changes(cache_dir, tmp_path):
    whole = data(cache_dir)
    train_ids = whole.record_ids[whole.indices("train")]
    listed = list(train_ids[[3, 10, 11, 40]])
    out = data(cache_dir, exclude_records=write_list(tmp_path / "l.csv", listed))
    rows = np.flatnonzero(np.isin(whole.record_ids, listed))
    np.testing.assert_array_equal(out.indices(EXCLUDED), rows)
    assert len(out.indices("train")) == len(whole.indices("train")) - 4
    for split in ("val", "test"):
        np.testing.assert_array_equal(out.indices(split), whole.indices(split))
    np.testing.assert_array_equal(out.labels, whole.labels)  # rows kept: indices match the whole split's
    table = out.summary()
    assert table.loc[EXCLUDED, "total"] == 4 and table.loc["train", "total"] == len(whole.indices("train")) - 4
    assert EXCLUDED not in whole.summary().index


def test_an_audit_ranking_needs_exclude_top_and_is_read_by_rank(cache_dir, tmp_path):
    whole = data(cache_dir)
    ids = whole.record_ids[whole.indices("train")][:6]
    ranking = write_list(tmp_path / "audit.csv", ids, combined_rank=[4, 1, 6, 2, 5, 3])  # rows not in rank order
    with pytest.raises(DataError, match="exclude_top=N"):
        data(cache_dir, exclude_records=ranking)
    out = data(cache_dir, exclude_records=ranking, exclude_top=3)
    assert set(out.record_ids[out.indices(EXCLUDED)]) == {ids[1], ids[3], ids[5]}  # ranks 1, 2, 3
    with pytest.raises(DataError, match="lists only 6"):
        data(cache_dir, exclude_records=ranking, exclude_top=7)


def test_an_audit_ranking_by_one_signal_is_read_by_its_rank_not_the_combined_one(cache_dir, tmp_path):
    whole = data(cache_dir)
    ids = whole.record_ids[whole.indices("train")][:6]
    # `erts audit --rank-by p_oof`: `rank` is p_oof's order, `combined_rank` stays the combined score's
    ranking = write_list(tmp_path / "audit.csv", ids, rank=[2, 6, 1, 5, 3, 4], combined_rank=[4, 1, 6, 2, 5, 3])
    out = data(cache_dir, exclude_records=ranking, exclude_top=2)
    assert set(out.record_ids[out.indices(EXCLUDED)]) == {ids[2], ids[0]}  # ranks 1, 2 of `rank`


def test_bad_lists_are_refused_by_name(cache_dir, tmp_path):
    whole = data(cache_dir)
    train_ids = list(whole.record_ids[whole.indices("train")][:2])
    with pytest.raises(DataError, match="not in synthetic: nosuch1"):
        data(cache_dir, exclude_records=write_list(tmp_path / "a.csv", train_ids + ["nosuch1"]))
    pd.DataFrame({"id": train_ids}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match="no record_id column"):
        data(cache_dir, exclude_records=str(tmp_path / "b.csv"))
    cls = whole.labels[whole.indices("train")]
    every_of_class_0 = list(whole.record_ids[whole.indices("train")][cls == 0])
    with pytest.raises(DataError, match="no training record of"):
        data(cache_dir, exclude_records=write_list(tmp_path / "c.csv", every_of_class_0))
    with pytest.raises(ConfigError, match="exclude_top needs exclude_records"):
        load_config(overrides={"exclude_top": 3})


def test_validation_and_test_records_on_the_list_stay_with_a_warning(cache_dir, tmp_path, capsys):
    whole = data(cache_dir)
    val_id, test_id = whole.record_ids[whole.indices("val")[0]], whole.record_ids[whole.indices("test")[0]]
    train_id = whole.record_ids[whole.indices("train")[0]]
    out = data(cache_dir, exclude_records=write_list(tmp_path / "l.csv", [val_id, train_id, test_id]))
    assert list(out.record_ids[out.indices(EXCLUDED)]) == [train_id]
    np.testing.assert_array_equal(out.indices("test"), whole.indices("test"))
    err = capsys.readouterr().err
    assert "2 listed record(s) are in the validation or test split and stay there" in err and val_id in err


def test_a_run_trains_without_them_keeps_its_copy_and_resumes_with_it(cache_dir, tmp_path, one_thread, capsys):
    whole = data(cache_dir)
    train_ids = whole.record_ids[whole.indices("train")]
    listed = list(train_ids[::7])
    path = write_list(tmp_path / "suspects.csv", listed)
    over = tiny_overrides(cache_dir, tmp_path, method="dbpd", name="r", exclude_records=path, epochs=3)
    metrics = train(load_config(overrides=over))
    run = tmp_path / "r"
    assert metrics["excluded_records"] == len(listed)
    # the run says at its start what the list took from each class, counted here from the list itself
    given = pd.Series(whole.labels[whole.indices("train")], index=train_ids).map(dict(enumerate(whole.class_names)))
    per_class = []
    for c in whole.class_names:
        taken, total = int((given[listed] == c).sum()), int((given == c).sum())
        if total:
            per_class.append(f"{c} {taken} of {total} ({taken / total:.0%})")
    assert f"excluded   {len(listed)} training records set aside (exclude_records=), by label: " \
        f"{', '.join(per_class)}" in capsys.readouterr().out
    records = pd.read_csv(run / "train_records.csv", dtype={"record_id": str})
    assert not set(records.record_id) & set(listed) and len(records) == len(train_ids) - len(listed)
    for f in sorted((run / "selection").glob("epoch_*.npz")):  # never scored, selected or trained on
        assert not set(np.load(f)["index"]) & set(np.flatnonzero(np.isin(whole.record_ids, listed)))
    assert pd.read_csv(run / "excluded_records.csv", dtype={"record_id": str}).record_id.tolist() == \
        [r for r in whole.record_ids if r in set(listed)]
    test_ids = np.load(run / "predictions_test.npz")["record_ids"]
    np.testing.assert_array_equal(test_ids, whole.record_ids[whole.indices("test")])
    # the user's file changes afterwards: the run reopens with its own copy
    write_list(tmp_path / "suspects.csv", list(train_ids[:2]))
    cfg = load_config_from_run(run)
    assert cfg.data.exclude_records == str(run / "excluded_records.csv") and cfg.data.exclude_top is None
    again = load_dataset(cfg.data)
    assert set(again.record_ids[again.indices(EXCLUDED)]) == set(listed)
    assert resume(run)["excluded_records"] == len(listed)
