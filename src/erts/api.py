"""The Python API: train, load a run, predict and explain on raw signals, audit the training
records (docs/api.md, docs/audit.md).

``erts.DataDropout`` (src/erts/selection/dropout.py) is the other half: data dropout
and ERTS inside your own training loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from erts.config import Config, load_config


def _config(config: Config | str | Path | dict | list | None, overrides: dict[str, Any]) -> Config:
    """A Config from a Config, a YAML path, a dict or list of key=value settings, plus keyword overrides."""
    if isinstance(config, Config):
        from erts.config import apply_dict, validate

        apply_dict(config, overrides)
        validate(config)
        return config
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    settings: dict[str, Any] = {}
    if isinstance(config, dict):
        settings.update(config)
    elif isinstance(config, list):
        from erts.config import parse_overrides

        settings.update(parse_overrides(config))
    settings.update(overrides)
    return load_config(overrides=settings)


def train(config: Config | str | Path | dict | list | None = None, *, progress: bool = False,
          **overrides: Any) -> dict:
    """Trains one run (as ``erts train``) and returns its final metrics (also in metrics.json).

    ``erts.train({"method": "erts-dbpd", "epochs": 20})``, ``erts.train("configs/demo.yaml", seed=1)``.
    """
    from erts.train.loop import train as _train

    return _train(_config(config, overrides), progress=progress)


@dataclass
class Run:
    """A finished run, ready to predict: its config, model (eval mode, CPU) and label names."""

    run_dir: Path
    cfg: Config
    model: torch.nn.Module
    class_names: list[str]
    multilabel: bool
    fs: float          # the rate the model was trained at
    length: int        # samples of one prepared record
    window: int        # samples of the model's input (a crop_s window, or the whole record)
    scale: tuple[float, float] = (0.0, 1.0)  # standardize=train: the training split's (mean, std)


def load_run(run_dir: str | Path, which: str = "best") -> Run:
    """Loads a run folder (``best`` or ``last`` checkpoint)."""
    from erts.train.loop import load_run as _load
    from erts.data.tensors import fit_standardizer

    cfg, model, rs = _load(run_dir, which)
    window = int(round(cfg.data.crop_s * rs.fs)) if cfg.data.crop_s else rs.length
    scale = fit_standardizer(rs) if cfg.data.standardize == "train" else (0.0, 1.0)
    return Run(Path(run_dir), cfg, model, list(rs.class_names), rs.multilabel, float(rs.fs), rs.length,
               min(window, rs.length), scale)


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _inputs(run: Run, signals: Sequence[np.ndarray] | np.ndarray, fs: float):
    """Raw signals -> the run's prepared records as ``Tensors`` (windows cut as at evaluation)."""
    from erts.data.preprocess import preprocess
    from erts.data.records import signal_lengths
    from erts.data.tensors import Tensors, eval_stride_s

    if isinstance(signals, np.ndarray) and signals.ndim == 2:
        signals = [signals]
    prepared = []
    for i, x in enumerate(signals):
        x, _ = preprocess(np.asarray(x, dtype=np.float32), float(fs), run.cfg.data, f"signal {i}")
        prepared.append(x)
    records = np.stack(prepared)
    d = run.cfg.data
    window = run.window if run.window < records.shape[-1] else 0
    stride = int(round(eval_stride_s(d) * run.fs)) if d.eval_windows == "sliding" and window else 0
    return Tensors(torch.from_numpy(records), None, None, run.multilabel, window, False, None,
                   torch.from_numpy(signal_lengths(records)), run.scale, max(stride, 0))


def prepare(run: Run | str | Path, signals: Sequence[np.ndarray] | np.ndarray, fs: float) -> torch.Tensor:
    """Raw (leads, T) arrays at ``fs`` Hz -> the model's input, preprocessed as the run's data was
    (resampling, band-pass, standardisation, cut or padded to its length), and the centre window
    of each record's real signal (never of its zero padding)."""
    data = _inputs(_as_run(run), signals, fs)
    return data.x(torch.arange(len(data.signals)))


def predict(run: Run | str | Path, signals: Sequence[np.ndarray] | np.ndarray, fs: float) -> np.ndarray:
    """Class probabilities (N, K) of raw (leads, T) signals at ``fs`` Hz (softmax, or per-class
    sigmoid for multi-label runs), as the run was evaluated: its centre window, or the mean (max)
    over its sliding windows (``eval_windows=sliding``); columns in the order of ``run.class_names``."""
    from erts.data.tensors import aggregate

    run = _as_run(run)
    data = _inputs(run, signals, fs)
    x, owner = data.eval_windows(torch.arange(len(data.signals)))
    with torch.inference_mode():
        logits = run.model.eval()(x).float()
    probs = torch.sigmoid(logits) if run.multilabel else torch.softmax(logits, 1)
    return aggregate(probs, owner, len(data.signals), run.cfg.data.eval_aggregate).numpy()


def explain(run: Run | str | Path, signals: Sequence[np.ndarray] | np.ndarray, fs: float,
            target: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Grad-CAM of each signal's predicted class (or ``target``) at the run's layer, and its focus
    score as the run's filter reads it: ``maps`` (N, T) at the input's resolution, ``focus`` (N,),
    ``probs`` (N, K), ``target`` (N,)."""
    from erts.explain.gradcam import focus_measure, gradcam, upsample_to

    run = _as_run(run)
    x = prepare(run, signals, fs)
    with torch.inference_mode():
        logits = run.model.eval()(x).float()
    probs = torch.sigmoid(logits) if run.multilabel else torch.softmax(logits, 1)
    tgt = torch.as_tensor(target) if target is not None else probs.argmax(1)
    s = run.cfg.selection
    res = gradcam(run.model, x, tgt, layer=s.gradcam_layer)
    maps = upsample_to(res.maps.float(), x.shape[-1])
    read = maps if s.focus_resolution == "input" else res.maps.float()
    focus = focus_measure(read, s.focus_measure, s.focus_q)
    return {"maps": maps.numpy(), "focus": focus.numpy(), "probs": probs.numpy(), "target": tgt.numpy()}


def audit(target: str | Path | None = None, *, folds: int = 3, out: str | Path | None = None,
          truth: str | Path | None = None, top: int = 12, n_boot: int = 1000, noise_class: str = "auto",
          rank_by: str = "combined", **overrides: Any):
    """Ranks the training records of a run folder or config by how likely their label is wrong (as
    ``erts audit``); returns an ``AuditResult`` (``.table`` ranked, ``.metrics`` with ground truth).

    ``erts.audit("runs/x")``, ``erts.audit(dataset="synthetic", epochs=6, folds=3)``,
    ``erts.audit("runs/x", rank_by="p_oof")`` (one signal's ranking); settings (``epochs``: of each
    fold) override the run's or config's."""
    from erts.audit.core import audit as _audit

    return _audit(target, overrides, folds=folds, out=out, truth=truth, top=top, n_boot=n_boot,
                  noise_class=noise_class, rank_by=rank_by)
