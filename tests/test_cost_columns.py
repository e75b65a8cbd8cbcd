"""One naming scheme for cost quantities: the same name in log.csv, metrics.json and results.csv."""
import json

import pandas as pd
import pytest

from conftest import tiny_overrides
from erts.config import load_config
from erts.train.loop import train
from erts.train.sweep import flatten_metrics

# written out by hand from docs/training.md ("Cost columns"), not from the code's tables
PER_PHASE = {
    "seconds": ["scoring", "gradcam", "update", "irreducible", "eval", "other"],
    "cpu_seconds": ["scoring", "gradcam", "update", "irreducible", "eval", "other"],
    "forwards": ["scoring", "gradcam", "update", "irreducible"],
    "backwards": ["gradcam", "update", "irreducible"],
    "flops": ["scoring", "gradcam", "update", "irreducible"],
}
TRAINING = ("scoring", "gradcam", "update", "irreducible")  # the "train" sums (and FLOPs' total)
LOG_COLUMNS = {f"{g}_{p}" for g, ps in PER_PHASE.items() for p in ps} | {"seconds_epoch", "cpu_seconds_epoch"}
TOTALS = {"seconds_train", "seconds_total", "cpu_seconds_train", "cpu_seconds_total", "flops_total"}
OLD_NAMES = ("sec_", "fwd_", "bwd_", "cpu_epoch", "sample_forwards", "sample_backwards")


@pytest.fixture(scope="module")
def erts_run(cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cost")
    train(load_config(overrides=tiny_overrides(cache_dir, out, method="erts-dbpd", epochs=3, name="r")))
    return out / "r"


def test_same_quantity_same_name_in_log_metrics_and_results(erts_run):
    log = pd.read_csv(erts_run / "log.csv")
    metrics = json.loads((erts_run / "metrics.json").read_text())
    cost = metrics["cost"]
    results = flatten_metrics(metrics)
    cost_cols = {c for c in log.columns if c.split("_")[0] in ("seconds", "cpu", "forwards", "backwards", "flops")}
    assert cost_cols == LOG_COLUMNS
    assert not [c for c in list(log.columns) + list(results) if c.startswith(OLD_NAMES)]
    assert set(cost) == {"effective_epochs", *PER_PHASE}
    for group, phases in PER_PHASE.items():
        for phase in phases:
            name = f"{group}_{phase}"
            # the run's total under the same name: nested in metrics.json, flat in results.csv
            assert results[name] == cost[group][phase]
            if phase == "eval":  # the final validation and test pass come after the last epoch's row
                assert cost[group][phase] > log[name].sum() > 0
            elif phase == "other":  # so do the last epoch's closing writes (log, checkpoints)
                assert cost[group][phase] >= log[name].sum() > 0
            else:  # and the sum of the epochs' rows of log.csv
                assert log[name].sum() == pytest.approx(cost[group][phase], rel=1e-6, abs=1e-9)
    assert TOTALS <= set(results)
    for group in ("seconds", "cpu_seconds"):
        assert results[f"{group}_total"] == pytest.approx(sum(results[f"{group}_{p}"] for p in PER_PHASE[group]))
        assert results[f"{group}_train"] == pytest.approx(sum(results[f"{group}_{p}"] for p in TRAINING))
        assert log[f"{group}_epoch"].to_numpy() == pytest.approx(sum(log[f"{group}_{p}"] for p in PER_PHASE[group]).to_numpy())
    assert results["effective_epochs"] == pytest.approx(log["effective_epochs"].iloc[-1], rel=1e-12)  # CSV round trip
    # an ERTS run ran Grad-CAM (the fast path reuses the scoring pass's features: FLOPs, no extra forward)
    assert results["flops_gradcam"] > 0 and results["seconds_gradcam"] > 0


def test_old_runs_are_read_with_the_new_names(erts_run, tmp_path):
    """A run folder written before the scheme (old log.csv and metrics.json names) is reported
    and tabulated under the new names."""
    from erts.report.build import cost_table, read_log, read_metrics

    old = tmp_path / "old"
    old.mkdir()
    log = pd.read_csv(erts_run / "log.csv")
    renames = {"seconds_epoch": "sec_epoch", "cpu_seconds_epoch": "cpu_epoch",
               **{f"seconds_{p}": f"sec_{p}" for p in PER_PHASE["seconds"]},
               **{f"forwards_{p}": f"fwd_{p}" for p in PER_PHASE["forwards"]},
               **{f"backwards_{p}": f"bwd_{p}" for p in PER_PHASE["backwards"]}}
    log.drop(columns=[f"cpu_seconds_{p}" for p in PER_PHASE["cpu_seconds"]]).rename(columns=renames) \
        .to_csv(old / "log.csv", index=False)
    m = json.loads((erts_run / "metrics.json").read_text())
    m["cost"]["sample_forwards"] = m["cost"].pop("forwards")
    m["cost"]["sample_backwards"] = m["cost"].pop("backwards")
    (old / "metrics.json").write_text(json.dumps(m))
    back = read_log(old)
    assert back["seconds_epoch"].tolist() == log["seconds_epoch"].tolist()
    assert back["forwards_scoring"].tolist() == log["forwards_scoring"].tolist()
    row = flatten_metrics(m)
    assert row["forwards_update"] == m["cost"]["sample_forwards"]["update"]
    assert read_metrics(old)["cost"]["backwards"] == m["cost"]["sample_backwards"]
    table = cost_table(m["cost"], 3)
    assert "sample forwards, update" in set(table["cost"])


def test_results_of_older_runs_get_the_current_cpu_names():
    from erts.train.costnames import legacy_result_columns

    assert legacy_result_columns(["run", "cpu_train", "cpu_total", "sec_update"]) == {
        "cpu_train": "cpu_seconds_train", "cpu_total": "cpu_seconds_total", "sec_update": "seconds_update"}
    assert legacy_result_columns(["cpu_total", "cpu_seconds_total"]) == {}  # the current name wins
