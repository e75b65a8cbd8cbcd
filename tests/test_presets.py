"""The published presets run end to end on fixture data in the official layouts.

A tiny PTB-XL folder (CSVs + WFDB records, official folds) and a tiny CPSC 2018
folder (Challenge .hea + .mat) go through `erts.train.loop.train` with a
`paper-*` preset: the 2-D torchvision backbone is built, ERTS runs Grad-CAM at
the published layer, and the run ends with test metrics. Epochs, records and
record length are cut down so each run takes seconds on 2 CPU cores; every
other setting is the preset's.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_wfdb import write_challenge_folder, write_ptbxl

from erts.cli.main import main
from erts.config import load_config
from erts.train.builders import resolve_loss_name
from erts.train.loop import run_dir_for, train
from erts.presets import BACKBONES, DATASETS, MODES, PRESETS

# one PTB-XL diagnostic code per superclass: 3 records per fold (1-8 train, 9 val, 10 test)
PTBXL_CODES = {"NORM": "NORM", "IMI": "MI", "LVH": "HYP", "LAFB": "CD", "NDT": "STTC"}
PTBXL_RECORDS = {i: ({list(PTBXL_CODES)[i % 5]: 100.0, "SR": 0.0}, (i - 1) // 3 + 1, None) for i in range(1, 31)}
# CPSC 2018: 4 records for each paper8 class (SNOMED-CT codes), split 70/15/15 per class
CPSC_DX = {"NORM": "426783006", "AF": "164889003", "AVB": "270492004", "LBBB": "164909002",
           "RBBB": "59118001", "ST": "429622005", "PVC_PAC": "427172004", "OTHER": "251146004"}
FAST = ["epochs=3", "warmup_epochs=1", "gradcam_start=1", "revision_epoch=2", "quiet=true", "num_threads=1"]


@pytest.fixture(scope="module")
def ptbxl_root(tmp_path_factory) -> Path:
    return write_ptbxl(tmp_path_factory.mktemp("presets") / "ptb-xl", PTBXL_RECORDS, rates=(100,))


@pytest.fixture(scope="module")
def cpsc_root(tmp_path_factory) -> Path:
    dx = {f"A{k * 4 + j + 1:04d}": code for k, code in enumerate(CPSC_DX.values()) for j in range(4)}
    return write_challenge_folder(tmp_path_factory.mktemp("presets") / "cpsc_2018", dx, fs=500.0, seconds=10.0)


def _run(preset: str, root: Path, tmp_path: Path, *extra: str):
    cfg = load_config(overrides=[f"preset={preset}", f"root={root}", f"out_dir={tmp_path / 'runs'}",
                                 f"cache_dir={tmp_path / 'cache'}", *FAST, *extra])
    return cfg, train(cfg), run_dir_for(cfg)


def _check_published_run(cfg, metrics: dict, run_dir: Path, backbone: str, stem: str) -> None:
    """metrics.json with test metrics, the 2-D model, Grad-CAM at the published (middle) layer."""
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["test"]["macro_f1"] == metrics["test"]["macro_f1"] and "per_class_f1" in saved["test"]
    assert saved["model"] == backbone and saved["method"] == "erts-dbpd"
    assert 0.0 <= saved["test"]["macro_f1"] <= 1.0 and 0.0 <= saved["test"]["accuracy"] <= 1.0
    # the torchvision 2-D backbone: a one-channel 2-D stem conv (leads x time image)
    weights = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert weights[stem].ndim == 4 and weights[stem].shape[1] == 1
    # Grad-CAM at the published layer: a middle stage, so a partial backward per candidate
    # (the last-stage fast path has none)
    cost = saved["cost"]
    assert cost["flops"]["gradcam"] > 0 and cost["backwards"]["gradcam"] > 0
    assert cost["backwards"]["gradcam"] == cost["forwards"]["gradcam"]
    # selection logs: focus is scored exactly for the DBPD candidates of the ERTS epoch, never elsewhere
    sel = np.load(run_dir / "selection" / "epoch_001.npz")
    assert sel["pdd_keep"].any()
    assert not np.isfinite(sel["focus"][~sel["pdd_keep"]]).any()
    for b in range(0, len(sel["pdd_keep"]), cfg.optim.batch_size):     # a lone candidate needs no Grad-CAM
        cand = sel["pdd_keep"][b:b + cfg.optim.batch_size]
        if cand.sum() > 1:
            assert np.isfinite(sel["focus"][b:b + cfg.optim.batch_size][cand]).all()
    assert (sel["erts_keep"] <= sel["pdd_keep"]).all()
    for epoch in (0, 2):  # warm-up and revision: no Grad-CAM, everything updated
        other = np.load(run_dir / "selection" / f"epoch_{epoch:03d}.npz")
        assert np.isnan(other["focus"]).all() and other["updated"].all()
    assert cfg.selection.gradcam_layer == "published"


@pytest.mark.slow
def test_ptbxl_preset_runs_end_to_end(ptbxl_root, tmp_path):
    cfg, metrics, run_dir = _run("paper-ptbxl-resnet18-erts-dbpd", ptbxl_root, tmp_path, "length_s=2.5")
    assert (cfg.data.task, cfg.data.fs, cfg.model.head, cfg.optim.lr) == ("superclass_single", 100.0, "mlp", 3e-4)
    _check_published_run(cfg, metrics, run_dir, "resnet18", "backbone.conv1.weight")
    assert metrics["class_names"] == ["CD", "HYP", "MI", "NORM", "STTC"] and not metrics["multilabel"]
    # the official folds: fold 10 (records 28-30) is the test set
    ids = np.load(run_dir / "predictions_test.npz")["record_ids"]
    assert sorted(ids.tolist()) == ["28", "29", "30"]


@pytest.mark.slow
def test_cpsc_preset_with_published_length_runs_end_to_end(cpsc_root, tmp_path):
    cfg, metrics, run_dir = _run("paper-cpsc2018-mobilenet_v2-erts-dbpd", cpsc_root, tmp_path, "length_s=2")
    _check_published_run(cfg, metrics, run_dir, "mobilenet_v2", "backbone.features.0.0.weight")
    assert metrics["class_names"] == list(CPSC_DX) and cfg.data.fs == 500.0
    assert np.load(run_dir / "predictions_test.npz")["probs"].shape == (8, 8)  # 1 test record per class


def test_erts_presets_lists_the_63_published_and_the_ptbxl_benchmark(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines]
    expected = {f"paper-{d}-{b}-{m}" for d in DATASETS for b in BACKBONES for m in MODES} | {"ptbxl-benchmark"}
    assert len(names) == 64 and set(names) == expected == set(PRESETS)
    assert main(["presets", "paper-cpsc2018-efficientnet_v2_s-srd"]) == 0
    shown = json.loads(capsys.readouterr().out)
    # written out by hand from the published code (main.py, selective_gradient.py, model.py @133e7b9)
    assert shown == {
        "lr": 3e-4, "weight_decay": 0.01, "schedule": "step", "step_gamma": 0.98, "batch_size": 32, "epochs": 100,
        "tau": 0.3, "phi": 0.7, "gamma": 0.99, "gradcam_layer": "published", "head": "mlp", "head_hidden": 128,
        "dropout": 0.3, "lead_rows": 32, "granularity": "batch", "lead_pad": "center", "focus_resolution": "layer",
        "phi_round": "floor", "class_rescue": "published",
        "dataset": "cpsc2018", "task": "paper8", "fs": 500.0, "length_s": 10.0,
        "model": "efficientnet_v2_s", "method": "srd"}


def test_published_preset_builds_the_published_input_and_schedule():
    """12 leads padded to 32 rows centred: zero rows 0-9 and 22-31 (the published F.pad(y, (0, 0, 10, 10)));
    warm-up 5, Grad-CAM from 8, revision from 50 of 100 epochs."""
    from erts.config import schedule_of
    from erts.models import create_model

    cfg = load_config(overrides=["preset=paper-ptbxl-resnet18-erts-dbpd"])
    s = schedule_of(cfg)
    assert (s.warmup, s.gradcam_start, s.revision) == (5, 8, 50)
    m = cfg.model
    model = create_model(m.model, in_channels=12, num_classes=5, head=m.head, lead_rows=m.lead_rows,
                         lead_pad=m.lead_pad)
    seen = {}
    model.backbone.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    x = torch.arange(1, 13, dtype=torch.float32)[None, :, None].expand(1, 12, 64).contiguous()
    model.eval()(x)
    img = seen["x"][0, 0]                                   # (32, 64)
    assert img.shape == (32, 64)
    assert (img[:10] == 0).all() and (img[22:] == 0).all()
    assert torch.equal(img[10:22, 0], torch.arange(1, 13, dtype=torch.float32))


def test_published_switches_override_a_preset():
    """The faithful-versus-fixed switches documented in docs/presets.md win over the preset."""
    ours = load_config(overrides=["preset=paper-cpsc2018-resnet18-full"])
    assert (ours.selection.score_mode, ours.optim.loss_policy, ours.data.length_s) == ("eval", "same", 10.0)
    faithful = ["score_mode=train", "loss_policy=published", "length_s=2"]
    full = load_config(overrides=["preset=paper-cpsc2018-resnet18-full", *faithful])
    erts = load_config(overrides=["preset=paper-cpsc2018-resnet18-erts-dbpd", *faithful, "gradcam_layer=last"])
    assert (full.selection.score_mode, full.data.length_s) == ("train", 2.0)
    assert resolve_loss_name(full, multilabel=False) == "ce"  # the published baseline: plain CE
    assert resolve_loss_name(erts, multilabel=False) == "cb_ce"  # the published methods: class-balanced CE
    assert resolve_loss_name(ours, multilabel=False) == "ce" and erts.selection.gradcam_layer == "last"
