"""update_batches=full: Selective-Backprop's backprop queue (angelajiang/SelectiveBackprop @ 7c41937,
lib/trainer.py: Trainer.get_batch) in front of a per-batch rule; every step a full batch."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_overrides
from erts.config import ConfigError, load_config
from erts.distributed import Dist
from erts.selection.queue import UpdateQueue
from erts.train.loop import Trainer, train


def official_step_sizes(kept_per_pool: list[int], batch_size: int) -> tuple[list[tuple[int, int]], int]:
    """The official trainer within an epoch, written out from its code: after each pool the queue
    back-propagates its oldest batch_size selected samples once that many have gathered (one batch
    per pool); at the epoch's last pool, when fewer remain, what is left. Returns the (pool, step
    size) pairs and the samples it carries into the next epoch (a full batch was taken last)."""
    waiting, steps = 0, []
    for pool, kept in enumerate(kept_per_pool):
        waiting += kept
        if waiting >= batch_size:
            steps.append((pool, batch_size))
            waiting -= batch_size
        elif pool == len(kept_per_pool) - 1 and waiting:
            steps.append((pool, waiting))
            waiting = 0
    return steps, waiting


def test_the_queue_steps_when_the_official_trainer_does():
    rng = np.random.default_rng(0)
    kept = [int(k) for k in rng.integers(0, 33, size=40)]
    before_last = sum(kept[:-1]) % 32
    kept[-1] = 31 - before_last  # fewer than a batch waiting at the end: the official trainer steps on them
    official, carried = official_step_sizes(kept, 32)
    assert carried == 0 and official[-1][1] == 31 and len(official) >= 20
    trainer = SimpleNamespace(cfg=SimpleNamespace(optim=SimpleNamespace(batch_size=32)), dist=Dist())
    queue, steps, next_id = UpdateQueue(), [], 0
    for pool, k in enumerate(kept):
        ids = torch.arange(next_id, next_id + k)
        next_id += k
        queue.put(ids, ids[:, None].float())
        steps += [(pool, i) for i, _, _ in Trainer._full_batches(trainer, queue, rest=pool == len(kept) - 1)]
    assert [(p, len(i)) for p, i in steps] == official
    order = torch.cat([i for _, i in steps])
    assert order.tolist() == list(range(next_id))  # oldest first, every kept sample exactly once
    assert len(queue) == 0


def test_the_queue_keeps_windows_and_weights_with_their_samples():
    q = UpdateQueue()
    q.put(torch.tensor([3, 4]), torch.tensor([[3.0], [4.0]]))
    q.put(torch.tensor([7]), torch.tensor([[7.0]]), weight=torch.tensor([2.0]))
    ids, x, w = q.take(2)
    assert ids.tolist() == [3, 4] and x[:, 0].tolist() == [3.0, 4.0] and w.tolist() == [1.0, 1.0]
    ids, x, w = q.take(2)
    assert ids.tolist() == [7] and x[:, 0].tolist() == [7.0] and w.tolist() == [2.0]
    ids, x, w = q.take(2)
    assert len(ids) == 0 and x is None and w is None
    q.put(torch.tensor([1]), torch.tensor([[1.0]]))
    assert q.take(5)[2] is not None  # once weighted, a queue hands weights out


def steps_expected(run_dir, batch_size: int, full: bool) -> list[int]:
    """Optimiser steps per epoch from the selection logs alone: per pool (consecutive batch_size
    samples of the epoch's order) a step when it kept anything, or ceil(kept / batch_size) when the
    select epoch's kept samples fill full batches."""
    log = pd.read_csv(run_dir / "log.csv")
    steps = []
    for epoch, phase in zip(log.epoch, log.phase):
        updated = np.load(run_dir / "selection" / f"epoch_{epoch:03d}.npz")["updated"]
        if full and phase == "select":
            steps.append(-(-int(updated.sum()) // batch_size))
        else:
            pools = [updated[i:i + batch_size] for i in range(0, len(updated), batch_size)]
            steps.append(sum(bool(p.any()) for p in pools))
    return steps


@pytest.mark.parametrize("method,update_batches", [("loss-topk", "auto"), ("loss-topk", "kept"),
                                                    ("rho-loss", "auto")])
def test_a_run_steps_on_full_batches_of_its_kept_samples(cache_dir, tmp_path, method, update_batches):
    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, name="r", method=method, epochs=4,
                                               update_batches=update_batches, rho_keep=0.25, rho_il_epochs=1))
    full = update_batches != "kept"
    assert cfg.selection.update_batches == ("full" if full else "kept")
    metrics = train(cfg)
    log = pd.read_csv(tmp_path / "r" / "log.csv")
    assert log.n_steps.tolist() == steps_expected(tmp_path / "r", 32, full)
    assert metrics["optimizer_steps"] == log.n_steps.sum()
    from erts.cli.train_cmd import format_summary

    assert f", {log.n_steps.sum()} optimiser steps" in format_summary(metrics, tmp_path / "r")
    select = log[log.phase == "select"]
    assert len(select) and (select.n_updated < select.n_train).all()
    if full:  # fewer steps than pools: each one a full batch
        assert (select.n_steps < np.ceil(select.n_train / 32)).all()


def test_the_other_rules_keep_their_per_pool_steps_and_weighted_rules_refuse_the_queue(tmp_path):
    assert load_config(overrides=["method=dbpd"]).selection.update_batches == "kept"
    assert load_config(overrides=["method=erts-loss-topk"]).selection.update_batches == "full"
    with pytest.raises(ConfigError, match="importance-weighted"):
        load_config(overrides=["method=dbpd", "easy_keep=0.3", "update_batches=full"])
    with pytest.raises(ConfigError, match="importance-weighted"):
        load_config(overrides=["method=infobatch", "granularity=batch", "update_batches=full"])
    assert load_config(overrides=["method=rho-loss", "easy_keep=0.3"]).selection.update_batches == "full"


def test_a_run_saved_before_the_key_resumes_with_per_pool_steps():
    from erts.config import config_from_dict

    saved = load_config(overrides=["method=loss-topk"]).to_dict()
    del saved["selection"]["update_batches"]
    assert config_from_dict(saved).selection.update_batches == "kept"


def test_data_dropout_says_where_full_batches_come_from_in_a_users_loop():
    from torch import nn

    from erts import DataDropout

    with pytest.raises(ValueError, match="UpdateQueue"):
        DataDropout(nn.Linear(4, 2), "loss-topk", num_samples=10, epochs=2, update_batches="full")
