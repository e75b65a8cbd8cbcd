"""The one training loop: every method end to end, determinism, cost accounting, resume after kill."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_overrides
from erts.config import load_config
from erts.train.loop import resume, train


def run(cache_dir, out, **extra):
    return train(load_config(overrides=tiny_overrides(cache_dir, out, **extra)))


def selection_logs(run_dir):
    files = sorted((run_dir / "selection").glob("epoch_*.npz"))
    return [dict(np.load(f)) for f in files]


@pytest.mark.parametrize("method", ["full", "dbpd", "smrd", "srd", "erts-dbpd", "erts-smrd", "erts-srd"])
def test_every_method_runs_and_accounts(cache_dir, tmp_path, method):
    m = run(cache_dir, tmp_path, method=method, epochs=3, name="r", gamma=0.5)
    run_dir = tmp_path / "r"
    log = pd.read_csv(run_dir / "log.csv")
    n_train = int(log.n_train[0])
    logs = selection_logs(run_dir)
    assert len(logs) == 3 and len(log) == 3
    # effective epochs: hand-computed sum of updated samples over N
    ee = sum(int(s["updated"].sum()) for s in logs) / n_train
    assert m["cost"]["effective_epochs"] == pytest.approx(ee)
    assert log.effective_epochs.iloc[-1] == pytest.approx(ee)
    # counters add up: per-epoch rows sum to the totals; update forwards == backwards == updated samples
    c = m["cost"]
    assert c["forwards"]["update"] == c["backwards"]["update"] == log.n_updated.sum() == ee * n_train
    for phase in ("scoring", "gradcam", "update"):
        assert log[f"forwards_{phase}"].sum() == pytest.approx(c["forwards"][phase])
        assert log[f"flops_{phase}"].sum() == pytest.approx(c["flops"][phase], rel=1e-9)
    phases = ("scoring", "gradcam", "update", "eval", "other")
    assert c["seconds"]["total"] == pytest.approx(sum(c["seconds"][p] for p in phases))
    assert log.seconds_epoch.to_numpy() == pytest.approx(sum(log[f"seconds_{p}"] for p in phases).to_numpy())
    assert c["flops"]["total"] == pytest.approx(c["flops"]["scoring"] + c["flops"]["gradcam"] + c["flops"]["update"])
    # select epochs (1 and 2: warm-up 1, revision from 3) score the whole training set, except plain SRD
    sel_epoch = log[log.phase == "select"]
    assert list(log.phase) == (["full"] * 3 if method == "full" else ["warmup", "select", "select"])
    if method == "full":
        assert ee == 3 and c["forwards"]["scoring"] == 0
    elif method == "srd":
        assert c["forwards"]["scoring"] == 0 and int(sel_epoch.n_updated.iloc[0]) < n_train
    else:
        assert c["forwards"]["scoring"] == 2 * n_train
        assert (sel_epoch.n_scored == n_train).all()
    if method.startswith("erts"):
        s = logs[1]
        for b in range(0, n_train, 32):                               # per batch of 32
            cand, focus = s["pdd_keep"][b:b + 32], s["focus"][b:b + 32]
            if cand.sum() > 1:                                        # a lone candidate needs no Grad-CAM
                assert np.isfinite(focus[cand]).all()                 # every candidate got a focus score
            assert not np.isfinite(focus[~cand]).any()                # and only candidates
        assert (s["erts_keep"] <= s["pdd_keep"]).all() and (s["updated"] == s["erts_keep"]).all()
        assert c["flops"]["gradcam"] > 0
    else:
        assert c["flops"]["gradcam"] == 0
    for s in logs:  # every training sample is seen once per epoch
        assert sorted(s["index"].tolist()) == sorted(pd.read_csv(run_dir / "train_records.csv")["index"].tolist())
    assert set(m["test"]) >= {"macro_f1", "accuracy", "macro_auroc", "per_class_f1", "confusion"}


def test_epoch_granularity_scores_then_trains_on_subset(cache_dir, tmp_path):
    m = run(cache_dir, tmp_path, method="erts-dbpd", granularity="epoch", epochs=3, name="e")
    s = selection_logs(tmp_path / "e")[1]
    assert (s["updated"] == s["erts_keep"]).all()
    assert m["cost"]["forwards"]["update"] == int(sum(x["updated"].sum() for x in selection_logs(tmp_path / "e")))


def test_dbpd_keeps_exactly_low_confidence_in_the_loop(cache_dir, tmp_path):
    run(cache_dir, tmp_path, method="dbpd", tau=0.5, class_rescue="off", epochs=3, name="d")
    s = selection_logs(tmp_path / "d")[1]
    np.testing.assert_array_equal(s["pdd_keep"], s["p"] < 0.5)


def test_same_seed_same_numbers_and_other_seed_differs(cache_dir, tmp_path):
    a = run(cache_dir, tmp_path / "a", method="erts-dbpd", seed=1)
    b = run(cache_dir, tmp_path / "b", method="erts-dbpd", seed=1)
    c = run(cache_dir, tmp_path / "c", method="erts-dbpd", seed=2)
    assert a["test"] == b["test"] and a["val"] == b["val"]
    assert a["cost"]["effective_epochs"] == b["cost"]["effective_epochs"]
    assert a["test"] != c["test"]


def test_score_mode_eval_leaves_batchnorm_untouched(cache_dir, tmp_path):
    """Scoring in eval mode never updates BatchNorm statistics; the published train mode does."""
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="dbpd"))
    rs = load_dataset(cfg.data)
    for mode, changes in (("eval", False), ("train", True)):
        cfg.selection.score_mode = mode
        t = Trainer(cfg, rs, tmp_path / mode, progress=False)
        bn = [b for b in t.model.modules() if isinstance(b, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))][0]
        before = bn.running_mean.clone()
        t.score(t.idx["train"][:64], want_focus=False)
        assert (not torch.equal(before, bn.running_mean)) == changes


@pytest.mark.slow
def test_resume_after_kill_gives_identical_final_metrics(cache_dir, tmp_path):
    extra = dict(method="erts-dbpd", epochs=6, revision_epoch=5, name="k")
    straight = run(cache_dir, tmp_path / "straight", **extra)
    out = tmp_path / "killed"
    args = tiny_overrides(cache_dir, out, **extra)
    env = {**os.environ, "ERTS_CACHE": str(cache_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "erts.cli.main", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "k" / "log.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:  # header + 2 epochs done
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert not (out / "k" / "metrics.json").exists(), "the run finished before it could be killed"
    resumed = resume(out / "k", progress=False)
    assert resumed["test"] == straight["test"] and resumed["val"] == straight["val"]
    assert resumed["best_epoch"] == straight["best_epoch"]
    assert resumed["cost"]["effective_epochs"] == straight["cost"]["effective_epochs"]
    assert len(pd.read_csv(out / "k" / "log.csv")) == 6
    assert json.loads((out / "k" / "metrics.json").read_text())["test"] == straight["test"]


def test_existing_run_is_not_overwritten(cache_dir, tmp_path):
    run(cache_dir, tmp_path, epochs=1, name="x")
    with pytest.raises(FileExistsError, match="--resume"):
        run(cache_dir, tmp_path, epochs=1, name="x")


def test_a_finished_run_frees_its_trainer_even_when_a_reference_cycle_holds_it(cache_dir, tmp_path, monkeypatch):
    """A first import during model building leaves Trainer.__init__'s frame in a cycle; left to the
    exit, the DDP model frees the gloo process group during finalization (a rank aborted there)."""
    import gc
    import weakref

    from erts.train import loop

    made = []
    init = loop.Trainer.__init__

    def init_in_a_cycle(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.cycle = [self]  # held only by itself once train() returns
        made.append(weakref.ref(self))

    monkeypatch.setattr(loop.Trainer, "__init__", init_in_a_cycle)
    gc.disable()  # the collector must not run by chance: train() itself has to free it
    try:
        run(cache_dir, tmp_path, method="full", epochs=1, name="r")
        assert len(made) == 1 and made[0]() is None
    finally:
        gc.enable()


def test_training_crops_random_for_updates_centre_for_eval():
    from erts.data.tensors import Tensors

    sig = torch.arange(2 * 1 * 10, dtype=torch.float32).reshape(2, 1, 10)
    t = Tensors(sig, torch.tensor([0, 1]), torch.eye(2).bool(), False, window=4, random_crop=True,
                generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([0, 1])
    assert torch.equal(t.x(ids), sig[:, :, 3:7])                      # eval: centred window
    crops = [t.x(ids, train=True) for _ in range(20)]
    for c in crops:                                                   # each row a contiguous window
        assert c.shape == (2, 1, 4) and torch.equal(c[..., 1:] - c[..., :-1], torch.ones(2, 1, 3))
    assert len({int(c[0, 0, 0]) for c in crops}) > 1                  # offsets vary
    t.random_crop = False
    assert torch.equal(t.x(ids, train=True), sig[:, :, 3:7])


def test_focus_is_read_at_input_resolution(cache_dir, tmp_path):
    """At the last stage a short input leaves a handful of map positions, where the top-q mean is 1
    for any non-constant map; read at the input's resolution the score is graded."""
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd"))
    t = Trainer(cfg, load_dataset(cfg.data), tmp_path / "r", progress=False)
    maps = torch.tensor([[0.0, 1.0, 0.5, 0.2, 0.0, 0.1, 0.3, 0.0], [0.0, 1.0, 0.9, 0.9, 0.8, 0.9, 0.95, 0.0]])
    graded = t.focus_of(maps)
    # METHOD.md's score (mean of the top q of the min-max map): a narrow peak scores lower than a
    # broad plateau once the top q spans more than the peak
    assert graded.shape == (2,) and (graded < 1).all() and graded[0] < graded[1]
    t.cfg.selection.focus_resolution = "layer"
    assert torch.equal(t.focus_of(maps), torch.ones(2))  # 8 positions, q=0.1 -> the max alone


def test_fused_focus_of_a_whole_epoch_pool_matches_autograd_gradcam(cache_dir, tmp_path):
    """Per-epoch pools: the scoring pass turns each chunk's features into focus scores at once (no
    whole-pool feature maps are kept); the result equals autograd Grad-CAM on the candidates."""
    from erts.data import load_dataset
    from erts.explain.gradcam import gradcam
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", granularity="epoch",
                                               score_batch_size=48))
    t = Trainer(cfg, load_dataset(cfg.data), tmp_path / "r", progress=False)
    ids = t.idx["train"]
    scores = t.score(ids, want_focus=True)
    assert scores.focus_all.shape == (len(ids),) and not hasattr(scores, "feats")
    assert t.cost.forwards["gradcam"] == 0 and t.cost.flops["gradcam"] > 0  # no extra forward, counted
    candidates = torch.rand(len(ids), generator=torch.Generator().manual_seed(0)) < 0.5
    t.focus(ids, scores, candidates)
    ref = t.focus_of(gradcam(t.model, t.data.x(ids[candidates]), t.data.y[ids[candidates]], fast=False).maps)
    torch.testing.assert_close(scores.focus[candidates], ref, atol=1e-4, rtol=1e-4)
    assert scores.focus[~candidates].isnan().all()


def test_score_batch_size_auto_fits_the_device():
    from erts.train.builders import resolve_score_batch_size as bs

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert bs(100, cpu, 1000) == 100                                  # an explicit size is kept
    assert [bs(0, cpu, t) for t in (250, 500, 1000, 5000, 100_000)] == [256, 128, 64, 16, 8]
    assert bs(0, cpu, 1000, image_rows=32) == 16                      # 2-D: 32 x 1,000 images
    assert bs(0, gpu, 1000) == 512


def test_optimizer_uses_the_fused_adamw_kernel_on_cpu():
    from erts.models import create_model
    from erts.train.builders import build_optimizer

    opt = build_optimizer(load_config(overrides=["lr=0.01"]), create_model("resnet18_1d", in_channels=1, num_classes=3))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["fused"] is True
    assert opt.param_groups[0]["lr"] == 0.01


def test_seconds_add_up_to_the_wall_clock_of_the_epochs(cache_dir, tmp_path):
    """Every second of an epoch is booked to a phase: what no phase times (rules, log and checkpoint
    writes) is "other", so the epochs' seconds equal the wall clock of fit()."""
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", epochs=3))
    t = Trainer(cfg, load_dataset(cfg.data), tmp_path / "r", progress=False)
    start = time.perf_counter()
    t.fit()
    wall = time.perf_counter() - start
    log = pd.read_csv(tmp_path / "r" / "log.csv")
    assert (log.seconds_other > 0).all()
    # the run's totals are the wall clock of fit() (only the schedule line printed before the first
    # epoch is outside); the epoch rows hold all but the last epoch's closing writes
    total = sum(t.cost.seconds.values())
    assert total == pytest.approx(wall, abs=0.05)
    assert log.seconds_epoch.sum() <= total and log.seconds_epoch.sum() > 0.5 * total
    # CPU time (all threads of the process) is booked the same way, beside the wall clock
    assert (log.cpu_seconds_epoch > 0).all()
    assert sum(t.cost.cpu_seconds.values()) >= log.cpu_seconds_epoch.sum() > 0


def test_per_batch_selection_scores_and_updates_the_same_windows(cache_dir, tmp_path):
    """With random training crops, the scoring pass, Grad-CAM and the update of a batch all see the
    same random window of each record (published: one tensor per batch)."""
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="dbpd", crop_s=1.0, crop="random",
                                               tau=0.9, epochs=3))
    t = Trainer(cfg, load_dataset(cfg.data), tmp_path / "r", progress=False)
    seen = []
    t.model.backbone.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].detach().clone())))
    t.run_epoch(1)  # a select epoch
    pairs = 0
    for (train_a, xa), (train_b, xb) in zip(seen, seen[1:]):
        if not train_a and train_b:  # a scoring forward, then the update on its kept samples
            rows = {tuple(r.flatten().tolist()) for r in xa}
            assert all(tuple(r.flatten().tolist()) in rows for r in xb)
            pairs += 1
    assert pairs >= 3


def test_multilabel_dbpd_keeps_hard_samples_and_the_filter_drops_some(cache_dir, tmp_path):
    """Multi-label p is the least-learned label's, so DBPD keeps samples of its own (not only class
    rescues) and the focus filter has candidates to drop."""
    run(cache_dir, tmp_path, method="erts-dbpd", multilabel=True, epochs=4, name="ml", tau=0.3)
    logs = selection_logs(tmp_path / "ml")
    log = pd.read_csv(tmp_path / "ml" / "log.csv")
    sel = [s for e, s in enumerate(logs) if log.phase[e] == "select"]
    assert sel
    for s in sel:
        own = s["pdd_keep"] & ~s["rescued"]
        assert own.sum() > 0                                           # DBPD's own (non-rescued) picks
        assert (s["pdd_keep"] & ~s["erts_keep"]).sum() > 0             # the focus filter dropped some
        np.testing.assert_array_equal(s["p"][own] < 0.3, np.ones(int(own.sum()), bool))


def test_smrd_schedule_replays_a_dbpd_runs_counts(cache_dir, tmp_path):
    run(cache_dir, tmp_path, method="dbpd", name="d", epochs=4)
    run(cache_dir, tmp_path, method="smrd", name="s", epochs=4, smrd_schedule=str(tmp_path / "d"))
    d, s = selection_logs(tmp_path / "d"), selection_logs(tmp_path / "s")
    for a, b in zip(d, s):
        assert a["updated"].sum() == b["updated"].sum()
        per_batch = lambda x: [int(x[i:i + 32].sum()) for i in range(0, len(x), 32)]
        assert per_batch(a["updated"]) == per_batch(b["updated"])
    assert any(not np.array_equal(a["index"][a["updated"]], b["index"][b["updated"]]) for a, b in zip(d, s))
    with pytest.raises(Exception, match="batch_size=16"):
        run(cache_dir, tmp_path, method="smrd", name="s2", epochs=4, batch_size=16, smrd_schedule=str(tmp_path / "d"))


def test_default_erts_run_prints_its_schedule_and_runs_erts(cache_dir, tmp_path, capsys):
    """The defaults (no schedule keys) give warm-up, select, ERTS and revision epochs at any length."""
    args = [a for a in tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", epochs=6, name="dflt")
            if not a.startswith(("warmup_epochs", "gradcam_start", "revision_epoch"))]
    train(load_config(overrides=args))
    assert "schedule   warm-up 0, select 1-2, ERTS 2, revision 3-5" in capsys.readouterr().out
    log = pd.read_csv(tmp_path / "dflt" / "log.csv")
    assert list(log.phase) == ["warmup", "select", "select", "revision", "revision", "revision"]
    assert log.flops_gradcam[2] > 0 and log.flops_gradcam[1] == 0 == log.flops_gradcam[3]


def test_cost_counters_match_what_the_model_really_ran(cache_dir, tmp_path):
    """Counted independently of the meter: hooks on the backbone record every sample that goes through
    a training-mode forward and every sample a backward reaches."""
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="dbpd", epochs=3))
    t = Trainer(cfg, load_dataset(cfg.data), tmp_path / "r", progress=False)
    seen = {"fwd_train": 0, "fwd_eval": 0, "bwd": 0}

    def on_forward(module, args, out):
        seen["fwd_train" if module.training else "fwd_eval"] += out.shape[0]
        if out.requires_grad:
            out.register_hook(lambda g: seen.__setitem__("bwd", seen["bwd"] + g.shape[0]))

    t.model.backbone.register_forward_hook(on_forward)
    t.fit()
    c = t.cost
    assert c.forwards["update"] == seen["fwd_train"] and c.backwards["update"] == seen["bwd"]
    n_train, n_val = len(t.idx["train"]), len(t.idx["val"])
    # eval-mode forwards: the scoring pass over the train set in the 2 select epochs, validation every epoch
    assert seen["fwd_eval"] == c.forwards["scoring"] + c.forwards["eval"] == 2 * n_train + 3 * n_val
    assert seen["bwd"] < 3 * n_train  # the select epochs dropped samples


def test_a_phase_inside_another_is_booked_to_itself_only():
    from erts.train.cost import CostMeter

    c = CostMeter()
    t0 = time.perf_counter()
    with c.phase("update", 4, forward=True, backward=True):
        time.sleep(0.05)
        with c.phase("gradcam", 4, forward=False):
            time.sleep(0.1)
    wall = time.perf_counter() - t0
    assert c.seconds["gradcam"] == pytest.approx(0.1, abs=0.03)
    assert c.seconds["update"] == pytest.approx(0.05, abs=0.03)
    assert c.seconds["update"] + c.seconds["gradcam"] == pytest.approx(wall, abs=0.01)
    assert c.forwards == {**c.forwards, "update": 4, "gradcam": 0} and c.backwards["update"] == 4


def test_cli_says_which_reliability_filter_dropped_the_flipped_labels(cache_dir, tmp_path, capsys):
    """The end-of-run line names the filter's signal (reliability=loss here, not the paper's focus) and
    its drop shares by ground truth, computed here from the selection log and the flipped labels."""
    from erts.cli.main import main

    args = tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", name="rl", reliability="loss",
                          focus_filter="threshold", label_noise="symmetric", label_noise_rate=0.2)
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("reliability filter"))
    assert line.startswith("reliability filter (loss) dropped (share of candidates, by ground truth):")
    flipped = pd.read_csv(tmp_path / "rl" / "train_records.csv").set_index("index")["noise_flipped"]
    cand = drop = 0
    for f in sorted((tmp_path / "rl" / "selection").glob("epoch_*.npz")):
        s = np.load(f)
        if "filter_cand" in s and s["filter_cand"].any():
            c = s["filter_cand"] & flipped.loc[s["index"]].to_numpy().astype(bool)
            cand, drop = cand + int(c.sum()), drop + int((c & ~s["erts_keep"]).sum())
    assert cand > 0 and f"label flipped {drop / cand:.1%} of {cand}" in line
