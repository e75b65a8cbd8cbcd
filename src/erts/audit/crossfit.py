"""k-fold cross-training that scores every audited record after every epoch.

Why one training serves two families of signals: in fold f the model trains on the
other folds and, after each epoch, a scoring pass (eval mode, each record's centre
window, as the loop scores) measures every audited record. The records it trained on
give their training dynamics (p of the given label, margin, correct, EL2N, Grad-CAM
focus of the given label at the last stage, from the pass's own features); the
held-out fold gets its out-of-fold prediction (confident learning) from the epoch with
the best validation macro-F1, over the windows of its whole real signal.

Cost: k trainings on (k-1)/k of the records, i.e. k-1 full trainings of ``epochs``
epochs, plus one scoring pass over the audited records per epoch and fold (about a
quarter of a training epoch each on a CPU) and one sliding-window pass over each
held-out fold. Each fold's result is kept in ``fold_<f>/dynamics.npz`` and reused
when the audit is run again with the same settings.

Uses erts' own Trainer for the epochs (same model, loss, optimiser, windows and
seeds as ``erts train``); the per-epoch scoring is done here, not by the loop.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from erts.config import Config, apply_dict, dump_config
from erts.data.records import RecordSet
from erts.train import runio

# per-epoch arrays of a fold (E, N) over the audited records; float32 unless noted
EPOCH_FIELDS = ("p", "margin", "correct", "el2n", "cam_topq", "cam_mass", "cam_entropy")
CAM_MEASURES = ("topq", "mass", "entropy")


@dataclass
class FoldScores:
    """One fold's record of every audited record (positions 0..N-1 of ``audit_ids``)."""

    held_out: np.ndarray       # (N,) bool: the fold's held-out records
    epochs: dict[str, np.ndarray]  # EPOCH_FIELDS -> (E, N)
    probs_centre: np.ndarray   # (N, K) centre-window probabilities at the best epoch
    probs_oof: np.ndarray      # (N, K) held-out records: whole-signal probabilities at the best epoch (NaN elsewhere)
    best_epoch: int
    scale: tuple[float, float]  # the fold's input standardisation (standardize=train), for drawing
    seconds: float             # wall clock of the fold (training, scoring, evaluation)
    cpu_seconds: float


def fold_assignment(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) fold of each audited record: stratified by the given label, so every fold's model sees
    every class in the proportions of the whole. A class with fewer than k records is spread as far
    as it goes (scikit-learn warns; the audit still runs)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    folds = np.zeros(len(labels), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        for f, (_, test) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(labels, labels)):
            folds[test] = f
    return folds


def fold_config(cfg: Config, out_dir: Path, fold: int, epochs: int) -> Config:
    """The fold's training config: the audited config with every record updated every epoch
    (method=full: a record dropped by a selection rule would have no dynamics), ``epochs`` epochs."""
    c = copy.deepcopy(cfg)
    apply_dict(c, {"method": "full", "epochs": epochs, "warmup_epochs": None, "gradcam_start": None,
                   "revision_epoch": None, "smrd_schedule": None, "out_dir": str(out_dir), "name": f"fold_{fold}",
                   "quiet": True})
    return c


def fold_recordset(rs: RecordSet, audit_ids: np.ndarray, held_out: np.ndarray) -> RecordSet:
    """The dataset as fold f trains on it: the audited records outside the fold are its training
    split, the validation split stays, everything else (the fold, the test split) is set aside."""
    split = np.where(rs.split == "val", "val", "test").astype(rs.split.dtype)
    split[audit_ids[~held_out]] = "train"
    return dataclasses.replace(rs, split=split)


def settings_key(cfg: Config, audit_ids: np.ndarray, folds: np.ndarray, fold: int) -> str:
    """What a fold's saved result depends on: the config, the audited records and the fold split; not
    where it is written (an audit folder copied or moved elsewhere still reuses its folds)."""
    placeless = copy.deepcopy(cfg)
    apply_dict(placeless, {"out_dir": "."})
    h = hashlib.sha256(dump_config(placeless).encode())
    h.update(np.ascontiguousarray(audit_ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(folds, dtype=np.int64).tobytes())
    h.update(str(fold).encode())
    return h.hexdigest()[:16]


def score_pass(trainer, ids: torch.Tensor, q: float) -> dict[str, np.ndarray]:
    """p of the given label, margin (its logit minus the largest other), correct, EL2N, class
    probabilities and the three focus measures of the given label's last-stage Grad-CAM (read at
    the input's resolution) for ``ids``: one eval-mode forward over each record's centre window."""
    from erts.explain.gradcam import cam_from_features, focus_measure, upsample_to
    from erts.selection.dropout import el2n

    model, data = trainer.model, trainer.data
    model.eval()
    out: dict[str, list] = {k: [] for k in (*EPOCH_FIELDS, "probs")}
    with torch.inference_mode():
        for chunk in ids.split(trainer.score_bs):
            x, y = data.x(chunk), data.y[chunk]
            with trainer.autocast():
                feats = model.forward_features(x)
                logits = model.forward_head(feats).float()
            probs = torch.softmax(logits, 1)
            given = logits.gather(1, y[:, None]).squeeze(1)
            other = logits.scatter(1, y[:, None], -torch.inf).max(1).values
            maps = upsample_to(cam_from_features(model, feats, y)[0].float(), x.shape[-1])
            out["p"].append(probs.gather(1, y[:, None]).squeeze(1))
            out["margin"].append(given - other)
            out["correct"].append((probs.argmax(1) == y).float())
            out["el2n"].append(el2n(logits, y, False))
            out["probs"].append(probs)
            for m in CAM_MEASURES:
                out[f"cam_{m}"].append(focus_measure(maps, m, q))
    return {k: torch.cat(v).cpu().numpy().astype(np.float32) for k, v in out.items()}


def whole_signal_probs(trainer, ids: torch.Tensor) -> np.ndarray:
    """Class probabilities of ``ids`` from every window of each record's real signal (stride: the
    config's eval_stride_s, else half a window), averaged per record: a label error or an artefact
    anywhere in a long record counts, not only in its centre window."""
    from erts.data.tensors import aggregate, eval_stride_s

    d = trainer.data
    if d.window and d.window < d.signals.shape[-1]:
        d = dataclasses.replace(d, stride=max(1, int(round(eval_stride_s(trainer.cfg.data) * trainer.rs.fs))))
    trainer.model.eval()
    parts = []
    with torch.inference_mode():
        for chunk in ids.split(max(1, trainer.score_bs // 8)):
            x, owner = d.eval_windows(chunk)
            logits = torch.cat([trainer.forward_logits(part) for part in x.split(trainer.score_bs)])
            parts.append(aggregate(torch.softmax(logits, 1), owner, len(chunk), "mean"))
    return torch.cat(parts).cpu().numpy().astype(np.float32)


def train_fold(cfg: Config, rs: RecordSet, audit_ids: np.ndarray, folds: np.ndarray, fold: int, out_dir: Path,
               epochs: int, log=print) -> FoldScores:
    """Trains fold ``fold`` (or reads its saved result) and returns its scores."""
    from erts.train.loop import Trainer

    run_dir = out_dir / f"fold_{fold}"
    fcfg = fold_config(cfg, out_dir, fold, epochs)
    key = settings_key(fcfg, audit_ids, folds, fold)
    saved = load_fold(run_dir, key)
    if saved is not None:
        log(f"fold {fold}: reusing {run_dir / 'dynamics.npz'}")
        return saved
    wall, cpu = time.perf_counter(), time.process_time()
    held = folds == fold
    trainer = Trainer(fcfg, fold_recordset(rs, audit_ids, held), run_dir, progress=False)
    ids = torch.from_numpy(audit_ids).to(trainer.device)
    per_epoch: dict[str, list] = {k: [] for k in EPOCH_FIELDS}
    best_f1, best_epoch, best_state, best_probs = -1.0, -1, None, None
    for epoch in range(epochs):
        trainer.run_epoch(epoch)
        val, _ = trainer.evaluate("val")
        scores = score_pass(trainer, ids, cfg.selection.focus_q)
        for k in EPOCH_FIELDS:
            per_epoch[k].append(scores[k])
        if val["macro_f1"] > best_f1:
            best_f1, best_epoch, best_probs = val["macro_f1"], epoch, scores["probs"]
            best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        log(f"fold {fold}: epoch {epoch + 1}/{epochs}, val macro-F1 {val['macro_f1']:.3f}, "
            f"train p(given) mean {scores['p'][~held].mean():.3f}")
    trainer.model.load_state_dict(best_state)
    oof = np.full_like(best_probs, np.nan)
    oof[held] = whole_signal_probs(trainer, ids[torch.from_numpy(held).to(trainer.device)])
    result = FoldScores(held, {k: np.stack(v) for k, v in per_epoch.items()}, best_probs, oof, best_epoch,
                        trainer.data.scale, time.perf_counter() - wall, time.process_time() - cpu)
    runio.save_checkpoint(run_dir / "best.pt", {"model": best_state, "epoch": best_epoch})
    save_fold(run_dir, key, result)
    return result


def save_fold(run_dir: Path, key: str, r: FoldScores) -> None:
    runio.write_npz(run_dir / "dynamics.npz", key=np.array(key), held_out=r.held_out,
                    probs_centre=r.probs_centre, probs_oof=r.probs_oof,
                    meta=np.array(json.dumps({"best_epoch": r.best_epoch, "scale": list(r.scale),
                                              "seconds": r.seconds, "cpu_seconds": r.cpu_seconds})),
                    **{f"epoch_{k}": v for k, v in r.epochs.items()})


def load_fold(run_dir: Path, key: str) -> FoldScores | None:
    """A fold's saved result when it was made with the same settings (else None: train again)."""
    path = run_dir / "dynamics.npz"
    if not path.exists() or not (run_dir / "best.pt").exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != key:
            return None
        meta = json.loads(str(z["meta"]))
        return FoldScores(z["held_out"], {k: z[f"epoch_{k}"] for k in EPOCH_FIELDS}, z["probs_centre"],
                          z["probs_oof"], int(meta["best_epoch"]), tuple(meta["scale"]), float(meta["seconds"]),
                          float(meta["cpu_seconds"]))
