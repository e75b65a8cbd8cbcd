"""Distributed data parallel: real torchrun jobs of 2 CPU processes (gloo) on localhost.

Each test starts `python -m torch.distributed.run --standalone --nproc_per_node=2 -m erts train`
as a user would, and compares with a plain one-process run where the method says they agree.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_overrides

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is needed")


def env(mark: str = "") -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "ERTS_QUIET": "1", "ERTS_TEST_MARK": mark}


def torchrun_cmd(args: list[str], nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "erts", "train", *args]


def run(cmd: list[str], timeout: int = 300, mark: str = "") -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env=env(mark), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p


def one_process(args: list[str]) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "erts", "train", *args])


def selection(run_dir: Path, epoch: int) -> dict:
    return dict(np.load(run_dir / "selection" / f"epoch_{epoch:03d}.npz"))


def test_per_epoch_selection_on_two_ranks_keeps_the_same_global_set_as_one_process(cache_dir, tmp_path):
    # epoch 0 selects (warm-up 0) on the freshly initialised model: the same scores in both runs
    common = dict(method="erts-dbpd", granularity="epoch", epochs=2, warmup_epochs=0, gradcam_start=0,
                  revision_epoch=2, tau=0.4, phi=0.7)
    one_process(tiny_overrides(cache_dir, tmp_path / "one", name="r", **common))
    p = run(torchrun_cmd(tiny_overrides(cache_dir, tmp_path / "two", name="r", **common)))
    one, two = tmp_path / "one" / "r", tmp_path / "two" / "r"
    a, b = selection(one, 0), selection(two, 0)
    np.testing.assert_array_equal(a["index"], b["index"])          # the same global order
    np.testing.assert_allclose(a["p"], b["p"], rtol=1e-4, atol=1e-5)  # each sample's p, gathered in place
    cand = a["pdd_keep"]
    np.testing.assert_allclose(a["focus"][cand], b["focus"][cand], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(a["pdd_keep"], b["pdd_keep"])
    np.testing.assert_array_equal(a["erts_keep"], b["erts_keep"])
    assert 0 < b["erts_keep"].sum() < b["pdd_keep"].sum() < len(b["index"])  # the rule and the filter both dropped
    # rank 0 alone wrote the run: one metrics.json, one row per epoch, no temp files, world size recorded
    m = json.loads((two / "metrics.json").read_text())
    assert m["world_size"] == 2 and len(m["rank_seconds"]) == 2
    log = pd.read_csv(two / "log.csv")
    assert list(log["epoch"]) == [0, 1]
    assert not list(two.rglob("*.tmp"))
    assert p.stdout.count("test       macro-F1") == 1 and p.stdout.count("schedule ") == 1  # rank 0 alone prints
    assert "processes  2 (DDP)" in p.stdout
    # global counts: the epoch-0 updates of both ranks are the filter's kept set
    assert log.loc[0, "n_updated"] == b["erts_keep"].sum() == log.loc[0, "forwards_update"]
    assert log.loc[0, "forwards_scoring"] == len(b["index"])  # each sample scored once, on one rank


def test_per_batch_selection_on_two_ranks_counts_both_ranks_updates(cache_dir, tmp_path):
    from erts.config import load_config
    from erts.data import load_dataset

    common = dict(name="r", method="erts-dbpd", granularity="batch", epochs=3, warmup_epochs=0, gradcam_start=0,
                  revision_epoch=3, n_records=241, batch_size=14)
    rs = load_dataset(load_config(overrides=tiny_overrides(cache_dir, tmp_path, **common)).data)
    # the last global batch (2 x 14) holds one sample: rank 1's share of it is empty, and it still steps
    assert len(rs.indices("train")) % 28 == 1
    args = tiny_overrides(cache_dir, tmp_path, **common)
    run(torchrun_cmd(args))
    run_dir = tmp_path / "r"
    log = pd.read_csv(run_dir / "log.csv")
    n_train = int(log.loc[0, "n_train"])
    updated = 0
    for epoch in range(3):
        sel = selection(run_dir, epoch)
        assert sorted(sel["index"]) == sorted(set(sel["index"])) and len(sel["index"]) == n_train  # each once
        assert 0 < sel["updated"].sum() < n_train
        updated += int(sel["updated"].sum())
        assert log.loc[epoch, "n_updated"] == sel["updated"].sum() == log.loc[epoch, "forwards_update"]
        assert log.loc[epoch, "effective_epochs"] == pytest.approx(updated / n_train)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["cost"]["effective_epochs"] == pytest.approx(updated / n_train)


def test_full_update_batches_on_two_ranks_update_every_kept_sample_once_in_fewer_steps(cache_dir, tmp_path):
    """update_batches=full (loss-topk's default): each rank queues its kept samples, and the ranks step
    together once they hold a global batch between them."""
    args = tiny_overrides(cache_dir, tmp_path, name="r", method="loss-topk", granularity="batch", epochs=2,
                          warmup_epochs=0, revision_epoch=2, batch_size=14)
    run(torchrun_cmd(args))
    run_dir = tmp_path / "r"
    log = pd.read_csv(run_dir / "log.csv")
    n_train = int(log.loc[0, "n_train"])
    for epoch in range(2):
        sel = selection(run_dir, epoch)
        kept = int(sel["updated"].sum())
        assert 0 < kept < n_train and log.loc[epoch, "n_updated"] == kept == log.loc[epoch, "forwards_update"]
        # fewer steps than the global batches, and at least the full global batches the kept samples make
        assert -(-kept // 28) <= log.loc[epoch, "n_steps"] < -(-n_train // 28)


def _weights(run_dir: Path) -> dict:
    w = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    return {k: v for k, v in w.items() if v.is_floating_point()}


def _distance(a: dict, b: dict) -> float:
    return sum(float((a[k] - b[k]).square().sum()) for k in a) ** 0.5


def test_full_data_on_two_ranks_matches_one_process_with_the_same_global_batch(cache_dir, tmp_path):
    """batchnorm=frozen (BatchNorm in eval mode, its statistics fixed) makes a step independent of how
    the global batch is split; dropout=0 and whole records remove the per-rank randomness. What is
    left is float rounding (a gradient summed in one part or in two), which AdamW's per-weight
    normalisation amplifies: the control is the same one-process run with 2 threads instead of 1,
    which rounds differently in the same way."""
    common = dict(method="full", epochs=2, batchnorm="frozen", dropout=0.0, lr=1e-4)
    one_process(tiny_overrides(cache_dir, tmp_path / "one", name="r", batch_size=32, **common))
    one_process(tiny_overrides(cache_dir, tmp_path / "one", name="threads", batch_size=32, num_threads=2, **common))
    run(torchrun_cmd(tiny_overrides(cache_dir, tmp_path / "two", name="r", batch_size=16, **common)))
    w1, w2 = _weights(tmp_path / "one" / "r"), _weights(tmp_path / "two" / "r")
    rounding = _distance(w1, _weights(tmp_path / "one" / "threads"))
    assert _distance(w1, w2) <= 3 * rounding + 1e-6, (_distance(w1, w2), rounding)
    a = pd.read_csv(tmp_path / "one" / "r" / "log.csv")
    b = pd.read_csv(tmp_path / "two" / "r" / "log.csv")
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-3)
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-3)
    assert (b["forwards_update"] == a["forwards_update"]).all()  # every sample once per epoch, over both ranks


def test_the_loss_of_unequal_shares_averages_to_the_global_batch_loss(cache_dir, tmp_path, monkeypatch, one_thread):
    """What DDP averages (each rank's gradient) equals the one-process gradient of the whole batch,
    although the shares differ in size and the loss weighs classes (balanced_ce): each rank divides
    its weighted sum by the *global* normaliser. Two ranks simulated in one process: rank r's step is
    Trainer.update on its share with the all-reduce replaced by the known global sum."""
    from erts import distributed
    from erts.config import load_config
    from erts.data import load_dataset
    from erts.train import loop

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="full", loss="balanced_ce",
                                               batchnorm="frozen"))
    rs = load_dataset(cfg.data)
    t = loop.Trainer(cfg, rs, tmp_path / "run", progress=False)
    t.opt.param_groups[0]["lr"] = 0.0  # the steps leave the weights as they are: every gradient at the same point
    ids = t.idx["train"][:20]

    def grads():
        return torch.cat([p.grad.flatten() for p in t.model.parameters()])

    t.update(ids)
    whole = grads()
    per_rank = []
    global_norm = t.loss_fn.normaliser(t.data.y[ids], len(ids))
    monkeypatch.setattr(loop, "all_sum", lambda v, d: torch.full_like(v, global_norm))
    for rank, share in enumerate((ids[:13], ids[13:])):
        t.dist = distributed.Dist(world=2, rank=rank)
        t.update(share)
        per_rank.append(grads())
    torch.testing.assert_close((per_rank[0] + per_rank[1]) / 2, whole, rtol=1e-4, atol=1e-7)
    # a per-rank mean would weigh the 7-sample share's samples 13/7 times as much as the other's
    naive = [g * t.loss_fn.normaliser(t.data.y[ids], len(ids)) / t.loss_fn.normaliser(t.data.y[s], len(s))
             for g, s in zip(per_rank, (ids[:13], ids[13:]))]
    assert not torch.allclose((naive[0] + naive[1]) / 2, whole, rtol=1e-2, atol=1e-5)


def _rank_pid(mark: str, rank: int) -> int | None:
    """The pid of the worker of rank ``rank`` whose environment carries this test's mark."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"ERTS_TEST_MARK={mark}".encode() in environ and f"RANK={rank}".encode() in environ \
                and b"LOCAL_RANK=" + str(rank).encode() in environ:
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_stops_the_job_with_a_clear_message_and_resume_completes_it(cache_dir, tmp_path):
    mark = str(tmp_path)
    args = tiny_overrides(cache_dir, tmp_path, name="r", method="erts-dbpd", epochs=6, n_records=480)
    job = subprocess.Popen(torchrun_cmd(args), env=env(mark), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    log = tmp_path / "r" / "log.csv"
    deadline = time.time() + 240
    while not (log.exists() and len(log.read_text().splitlines()) >= 2) and time.time() < deadline:
        assert job.poll() is None, job.communicate()
        time.sleep(0.2)
    pid = _rank_pid(mark, 1)
    assert pid is not None, "rank 1 not found"
    os.kill(pid, signal.SIGKILL)
    out, err = job.communicate(timeout=240)
    assert job.returncode != 0
    assert "another process of this torchrun job failed" in err, err[-3000:]
    assert f"torchrun --standalone --nproc_per_node=2 -m erts train --resume {tmp_path / 'r'}" in err, err[-3000:]
    assert not (tmp_path / "r" / "metrics.json").exists()
    run(torchrun_cmd(["--resume", str(tmp_path / "r")]), mark=mark)
    epochs = pd.read_csv(log)["epoch"].tolist()
    assert epochs == list(range(6))
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["world_size"] == 2


def test_epoch_sampler_gives_each_rank_an_equal_share_of_the_kept_set(one_thread):
    from erts import DataDropout
    from erts.distributed import Dist
    from erts.selection.dropout import EpochSampler

    model = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    shares = []
    for rank in (0, 1):
        dd = DataDropout(model, "dbpd", num_samples=10, epochs=4, dist=Dist(world=2, rank=rank))
        dd.epoch_indices = lambda epoch, dataset, k=None: torch.tensor([1, 2, 4, 6, 7, 8, 9])  # 7 kept
        sampler = EpochSampler(dd, dataset=None)
        sampler.set_epoch(1)
        shares.append(list(sampler))
    assert len(shares[0]) == len(shares[1]) == 4  # ceil(7 / 2): the ranks step together
    assert set(shares[0]) | set(shares[1]) == {1, 2, 4, 6, 7, 8, 9}


def test_resuming_with_another_number_of_processes_warns(tmp_path, capsys):
    from erts.train.loop import warn_other_world_size

    (tmp_path / "run.json").write_text(json.dumps({"world_size": 2, "resumes": [{"world_size": 1}]}))
    warn_other_world_size(tmp_path, 1)
    assert "ran with 2 process(es) before and resumes with 1" in capsys.readouterr().out
    warn_other_world_size(tmp_path, 2)  # the job's own size: silent
    assert capsys.readouterr().out == ""


def test_cpu_processes_read_the_memory_mapped_cache_in_place(cache_dir, tmp_path, one_thread):
    """Every process of a CPU job maps the same prepared cache instead of holding a copy."""
    from erts.config import load_config
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="full"))
    load_dataset(cfg.data)  # prepares the cache
    rs = load_dataset(cfg.data)  # reads it, memory-mapped
    assert isinstance(rs.signals, np.memmap)
    t = Trainer(cfg, rs, tmp_path / "r", progress=False)
    assert np.shares_memory(t.data.signals.numpy(), rs.signals)
    before = rs.signals.copy()
    t.update(t.idx["train"][:32])  # training reads batches (copies) and never writes the cache
    np.testing.assert_array_equal(np.asarray(rs.signals), before)


def test_rho_loss_on_two_ranks_scores_and_selects_as_one_process(cache_dir, tmp_path):
    """rho-loss's irreducible-loss models train on every rank (rank 0's losses are used), so two ranks
    hold the same irreducible losses as one process, keep the same first selection, and charge the IL
    work once per rank (it was done twice)."""
    common = dict(name="r", method="rho-loss", granularity="epoch", epochs=1, warmup_epochs=0, rho_il_epochs=1,
                  rho_keep=0.25)
    one_process(tiny_overrides(cache_dir, tmp_path / "one", **common))
    run(torchrun_cmd(tiny_overrides(cache_dir, tmp_path / "two", **common)))
    one, two = tmp_path / "one" / "r", tmp_path / "two" / "r"
    bank = [torch.load(d / "checkpoints" / "last.pt", weights_only=True)["bank"]["irreducible"] for d in (one, two)]
    assert bank[0].isfinite().sum() > 100  # every training record has one
    torch.testing.assert_close(bank[0], bank[1], rtol=1e-4, atol=1e-5, equal_nan=True)
    a, b = selection(one, 0), selection(two, 0)
    np.testing.assert_array_equal(a["index"], b["index"])
    np.testing.assert_array_equal(a["pdd_keep"], b["pdd_keep"])
    assert 0 < b["pdd_keep"].sum() <= int(np.ceil(0.25 * len(b["index"]))) + 1
    la, lb = pd.read_csv(one / "log.csv"), pd.read_csv(two / "log.csv")
    assert lb.loc[0, "forwards_irreducible"] == 2 * la.loc[0, "forwards_irreducible"] > 0
    assert lb.loc[0, "n_updated"] == la.loc[0, "n_updated"] == a["pdd_keep"].sum()
