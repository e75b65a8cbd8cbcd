"""The one training loop. Every method (full, PDD rules, ERTS) runs through it.

Per epoch: the Selector says whether the epoch needs a scoring pass and Grad-CAM;
the pool (a mini-batch, or the whole epoch) is scored in eval/inference mode,
the rule and the focus filter give keep-masks, and only kept samples are
back-propagated. Everything is counted by the CostMeter and logged per sample in
``selection/epoch_XXX.npz``.

Determinism: model init, the epoch's shuffle, the rule's randomness and dropout
all derive from (seed, epoch), so a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from erts.config import Config, config_from_dict, dump_config
from erts.data import load_dataset
from erts.data.records import RecordSet
from erts.errors import DataError
from erts.progress import progress as progress_bar  # alias: self.progress / train(progress=) shadow the name
from erts.eval.metrics import compute_metrics, tune_thresholds
from erts.selection import PoolScores, Selector
from erts.selection.bank import ScoreBank
from erts.train import runio
from erts.train.builders import (build_loss, build_model, build_optimizer, build_scheduler, resolve_device,
                                 resolve_loss_name, resolve_score_batch_size)
from erts.train.cost import CostMeter, epoch_row
from erts.train.costnames import legacy_log_columns

# ground-truth columns copied to train_records.csv when a dataset has them (never model input)
GROUND_TRUTH_COLUMNS = ("corruption", "true_class", "label_changed", "label_original", "label_current")


def seed_for(seed: int, epoch: int, stream: int) -> int:
    """Independent, reproducible seeds per (run seed, epoch, purpose)."""
    return (seed * 1_000_003 + epoch * 1009 + stream) % (2**63)


@dataclass
class Tensors:
    """The dataset as device tensors, so batching is one index_select (no per-epoch decoding)."""

    signals: torch.Tensor  # (N, leads, T) float32, the prepared records
    y: torch.Tensor        # (N,) long, or (N, K) float multi-hot
    member: torch.Tensor   # (N, K) bool
    multilabel: bool
    window: int = 0        # crop_s in samples (0: whole records)
    random_crop: bool = False
    generator: torch.Generator | None = None  # draws random crop offsets (reseeded every epoch)

    @property
    def length(self) -> int:
        """Samples per model input (the crop window, or the whole prepared record)."""
        t = self.signals.shape[-1]
        return self.window if 0 < self.window < t else t

    def x(self, ids: torch.Tensor, train: bool = False) -> torch.Tensor:
        """Inputs for ``ids``: whole records, or ``window``-sample crops (random for training
        batches when crop=random, else centred)."""
        t = self.signals.shape[-1]
        if not self.window or self.window >= t:
            return self.signals[ids]
        if not (train and self.random_crop):
            start = (t - self.window) // 2
            return self.signals[ids, :, start:start + self.window]
        offsets = torch.randint(0, t - self.window + 1, (len(ids),), generator=self.generator).to(ids.device)
        cols = offsets[:, None] + torch.arange(self.window, device=ids.device)       # (B, W)
        x = self.signals[ids]
        return x.gather(2, cols[:, None, :].expand(-1, x.shape[1], -1))

    @classmethod
    def from_recordset(cls, rs: RecordSet, device: torch.device, crop_s: float | None = None,
                       crop: str = "center") -> "Tensors":
        x = torch.from_numpy(np.array(rs.signals, dtype=np.float32)).to(device)  # one copy into RAM (writable)
        if rs.multilabel:
            y = torch.from_numpy(rs.labels.astype(np.float32)).to(device)
            member = y > 0.5
        else:
            y = torch.from_numpy(rs.labels.astype(np.int64)).to(device)
            member = torch.nn.functional.one_hot(y, rs.num_classes).bool()
        window = int(round(crop_s * rs.fs)) if crop_s else 0
        return cls(x, y, member, rs.multilabel, window, crop == "random", torch.Generator())


def el2n(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """EL2N (Paul et al. 2021): the L2 norm of probabilities minus the one-hot (multi-hot) labels."""
    logits = logits.float()
    if multilabel:
        return (torch.sigmoid(logits) - y).norm(dim=1)
    probs = torch.softmax(logits, 1)
    return (probs - torch.nn.functional.one_hot(y, probs.shape[1]).float()).norm(dim=1)


def confidence(logits: torch.Tensor, y: torch.Tensor, multilabel: bool,
               reduce: str = "min") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """p = probability of the true label, ``correct`` = the prediction is right, and (multi-label
    only) the (n, K) probability of each class's correct label: sigmoid s for a positive, 1 - s
    for a negative. A multi-label p is the least-learned label's (``reduce="min"``: hard while
    any label is not learned) or the mean over classes (``"mean"``, which easy negatives
    dominate); correct = every class right at threshold 0.5."""
    logits = logits.float()
    if multilabel:
        s = torch.sigmoid(logits)
        p_label = torch.where(y > 0.5, s, 1 - s)
        p = p_label.min(1).values if reduce == "min" else p_label.mean(1)
        return p, (p_label > 0.5).all(1), p_label
    probs = torch.softmax(logits, 1)
    return probs.gather(1, y[:, None]).squeeze(1), probs.argmax(1) == y, None


class Trainer:
    """Holds the run's state; ``fit`` runs the epochs, ``finish`` evaluates the best model once on test."""

    def __init__(self, cfg: Config, rs: RecordSet, run_dir: Path, *, progress: bool = True):
        self.cfg, self.rs, self.run_dir = cfg, rs, run_dir
        self.progress = progress
        self.device = resolve_device(cfg.train.device)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg, rs).to(self.device)
        self.data = Tensors.from_recordset(rs, self.device, cfg.data.crop_s, cfg.data.crop)
        self.score_bs = resolve_score_batch_size(cfg.selection.score_batch_size, self.device, self.data.length,
                                                 cfg.model.lead_rows if self.model.is_2d else 0)
        self.idx = {s: torch.from_numpy(rs.indices(s)).to(self.device) for s in ("train", "val", "test")}
        if len(self.idx["train"]) == 0 or len(self.idx["val"]) == 0:
            raise DataError(f"{rs.name}: the training and validation splits must not be empty")
        self.loss_name = resolve_loss_name(cfg, rs.multilabel)
        self.loss_fn = build_loss(self.loss_name, rs.labels[rs.indices("train")], rs.num_classes, self.device)
        self.opt = build_optimizer(cfg, self.model)
        self.sched = build_scheduler(cfg, self.opt)
        self.selector = Selector(cfg.selection, cfg.train.epochs)
        self.replay = load_kept_counts(cfg.selection.smrd_schedule, self) if cfg.selection.smrd_schedule else None
        self.bank = ScoreBank(len(rs.labels), self.device)
        self.cost = CostMeter(self.device)
        self.start_epoch, self.best_f1, self.best_epoch = 0, -1.0, -1
        self.log_rows: list[dict] = []
        try:
            self.model.get_layer(cfg.selection.gradcam_layer)  # an unknown layer fails here, not mid-run
        except ValueError as e:
            from erts.config import ConfigError

            raise ConfigError(f"gradcam_layer={cfg.selection.gradcam_layer!r}: {e}") from None

    # ---------------------------------------------------------------- helpers
    @property
    def cam_fast(self) -> bool:
        """Grad-CAM at the last stage: computed from the scoring pass's own features."""
        return self.model.get_layer(self.cfg.selection.gradcam_layer) is self.model.get_layer("last")

    def autocast(self):
        if not self.cfg.train.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model(x).float()

    # ---------------------------------------------------------------- scoring
    def score(self, ids: torch.Tensor, want_focus: bool, x: torch.Tensor | None = None, epoch: int = -1) -> PoolScores:
        """Scoring pass over ``ids`` (batched by the score batch size): p, correct, loss and EL2N per
        sample, also written to the score bank.

        ``x``: the pool's inputs when the caller already cut them (per-batch selection scores,
        explains and updates the very same windows); default: each record's centre window.

        With ERTS active and the Grad-CAM layer at the last stage (the fast path), each chunk's
        Grad-CAM comes straight from the features this pass already computed and is reduced to
        a focus score at once, so only (n,) numbers outlive the chunk: a whole-epoch pool never
        holds its feature maps. That scores every sample, not only the candidates; the fast
        path costs well under 1 % of the scoring forward, and it is counted as Grad-CAM.
        """
        published = self.cfg.selection.score_mode == "train"
        self.model.train(published)  # published pitfall: train mode updates BatchNorm statistics
        fused = want_focus and self.cam_fast
        ps, cs, pls, losses, el2ns, focus = [], [], [], [], [], []
        grad_ctx = torch.no_grad if published else torch.inference_mode
        reduce = self.cfg.selection.confidence
        for start in range(0, len(ids), self.score_bs):
            chunk = ids[start:start + self.score_bs]
            xc = self.data.x(chunk) if x is None else x[start:start + self.score_bs]
            y = self.data.y[chunk]
            with self.cost.phase("scoring", len(chunk)), grad_ctx():
                with self.autocast():
                    f = self.model.forward_features(xc)
                    logits = self.model.forward_head(f)
                p, c, pl = confidence(logits, y, self.data.multilabel, reduce)
                losses.append(self.loss_fn.per_sample(logits, y))
                el2ns.append(el2n(logits, y, self.data.multilabel))
            ps.append(p)
            cs.append(c)
            pls.append(pl)
            if fused:
                focus.append(self.fast_focus(f, y))
        scores = PoolScores(torch.cat(ps), torch.cat(cs), self.data.member[ids],
                            p_label=torch.cat(pls) if self.data.multilabel else None,
                            focus_all=torch.cat(focus) if fused else None, loss=torch.cat(losses),
                            el2n=torch.cat(el2ns))
        self.bank.write(ids, epoch, p=scores.p, correct=scores.correct, loss=scores.loss, el2n=scores.el2n,
                        focus=scores.focus_all)
        scores.loss_mean = float(self.bank.loss[self.idx["train"]].mean())
        return scores

    def fast_focus(self, feats: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Focus of the true class from last-stage features (no extra forward or backward)."""
        from erts.explain.gradcam import cam_from_features

        with self.cost.phase("gradcam", len(y), forward=False), torch.inference_mode():
            maps, _ = cam_from_features(self.model, feats.float(), y)
            return self.focus_of(maps)

    def focus(self, ids: torch.Tensor, scores: PoolScores, candidates: torch.Tensor,
              x: torch.Tensor | None = None) -> None:
        """Grad-CAM focus of the candidates (NaN for the others, as in the selection log).

        Fast path: already computed by the scoring pass (or, with ``score_source=update``, kept
        in the score bank from the sample's last update). Any other layer, and a candidate the
        bank has no focus for yet: Grad-CAM on those candidates only (autograd: a forward and a
        backward to the layer; at the last stage a forward alone).
        """
        from erts.explain.gradcam import gradcam

        sel = torch.nonzero(candidates).squeeze(1)
        focus = torch.full((len(ids),), float("nan"), device=self.device)
        if scores.focus_all is not None:
            focus[sel] = scores.focus_all[sel]
            sel = sel[focus[sel].isnan()]
        if len(sel):
            fast = scores.focus_all is not None  # only the bank's gaps: the last stage, no backward
            with self.cost.phase("gradcam", len(sel), forward=True, backward=not fast):
                for chunk in sel.split(self.score_bs):
                    xc = self.data.x(ids[chunk]) if x is None else x[chunk]
                    res = gradcam(self.model, xc, self.data.y[ids[chunk]],
                                  layer=self.cfg.selection.gradcam_layer, fast=fast)
                    focus[chunk] = self.focus_of(res.maps)
        scores.focus = focus

    def focus_of(self, maps: torch.Tensor) -> torch.Tensor:
        """Focus score of (B, T') Grad-CAM maps, read at the input's resolution by default."""
        from erts.explain.gradcam import focus_measure, upsample_to

        s = self.cfg.selection
        maps = maps.float()
        if s.focus_resolution == "input":
            maps = upsample_to(maps, self.data.length)
        return focus_measure(maps, s.focus_measure, s.focus_q)

    # ---------------------------------------------------------------- selection
    def select(self, epoch: int, ids: torch.Tensor, gen: torch.Generator, x: torch.Tensor | None = None,
               count: int | None = None) -> tuple[torch.Tensor, dict]:
        """Keep-mask over ``ids`` plus the per-sample log fields (``x``, ``count``: see score, Selector)."""
        sel = self.selector
        nan = torch.full((len(ids),), float("nan"), device=self.device)
        scores = None
        if sel.needs_pass(epoch):
            scores = self.score(ids, sel.erts_active(epoch), x, epoch)
        elif sel.needs_scores(epoch):  # last known values, from the bank
            scores = self.bank.scores(ids, self.data.member[ids], self.idx["train"])
            if self.data.multilabel:
                scores.p_label = None  # the bank keeps p only; multi-label rescue then ranks by it
            if not (sel.erts_active(epoch) and self.cam_fast):
                scores.focus_all = None
        result = sel.select(epoch, self.data.member[ids], scores, gen,
                            focus_fn=lambda cand: self.focus(ids, scores, cand, x), count=count)
        weight = result.weight if result.weight is not None else torch.ones(len(ids), device=self.device)
        log = {"p": scores.p if scores is not None else nan,
               "focus": scores.focus if scores is not None and scores.focus is not None else nan,
               "pdd_keep": result.candidates, "erts_keep": result.keep, "rescued": result.rescued,
               "weight": torch.where(result.keep, weight, torch.zeros_like(weight))}
        return result.keep, log

    # ---------------------------------------------------------------- update
    def update(self, ids: torch.Tensor, x: torch.Tensor | None = None, weight: torch.Tensor | None = None,
               denom: int | None = None, epoch: int = -1) -> float:
        """One optimiser step on ``ids`` (inputs ``x`` if given, else fresh training windows), the
        per-sample losses scaled by ``weight`` (InfoBatch). With ``score_source=update`` the
        forward's own p, loss, EL2N (and fast-path focus for ERTS) go to the score bank."""
        self.model.train()
        y = self.data.y[ids]
        with self.cost.phase("update", len(ids), forward=True, backward=True):
            with self.autocast():
                feats = self.model.forward_features(self.data.x(ids, train=True) if x is None else x)
                logits = self.model.forward_head(feats).float()
            per_sample = self.loss_fn.per_sample(logits, y)
            loss = self.loss_fn.reduce(per_sample, y, weight, denom)
            if self.selector.score_source == "update":  # before the step: the weights that made the forward
                self.bank_from_update(ids, feats.detach(), logits.detach(), per_sample.detach(), epoch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.cost.updated += len(ids)
        return float(loss.detach())

    def bank_from_update(self, ids: torch.Tensor, feats: torch.Tensor, logits: torch.Tensor,
                         per_sample: torch.Tensor, epoch: int) -> None:
        """Scores of the updated samples from their own training forward (train-mode BatchNorm:
        batch statistics, so they differ slightly from an eval-mode pass; dropout sits in the
        head, whose Grad-CAM is taken in eval form)."""
        y = self.data.y[ids]
        p, c, _ = confidence(logits, y, self.data.multilabel, self.cfg.selection.confidence)
        focus = self.fast_focus(feats, y) if self.selector.uses_erts and self.cam_fast else None
        self.bank.write(ids, epoch, p=p, correct=c, loss=per_sample, el2n=el2n(logits, y, self.data.multilabel),
                        focus=focus)

    # ---------------------------------------------------------------- epoch
    def run_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        gen = torch.Generator().manual_seed(seed_for(cfg.train.seed, epoch, 1))
        torch.manual_seed(seed_for(cfg.train.seed, epoch, 2))  # dropout / stochastic depth
        self.data.generator.manual_seed(seed_for(cfg.train.seed, epoch, 3))  # random training crops
        train_ids = self.idx["train"]
        order = train_ids[torch.randperm(len(train_ids), generator=gen).to(self.device)]
        bs = cfg.optim.batch_size
        fields = {k: [] for k in ("index", "p", "focus", "pdd_keep", "erts_keep", "rescued", "weight", "updated")}
        losses: list[tuple[float, int]] = []
        counts = self.replay.get(epoch) if self.replay is not None else None

        def record(ids, log, kept):
            fields["index"].append(ids)
            for k in ("p", "focus", "pdd_keep", "erts_keep", "rescued", "weight"):
                fields[k].append(log[k])
            fields["updated"].append(kept)

        if cfg.selection.granularity == "epoch":
            keep, log = self.select(epoch, order, gen, count=None if counts is None else int(counts.sum()))
            record(order, log, keep)
            weighted = self.selector.reweights(epoch)
            batches = [(b, None, w if weighted else None) for b, w in zip(order[keep].split(bs), log["weight"][keep].split(bs))]
        else:
            batches = [(b, "select", None) for b in order.split(bs)]
        bar = progress_bar(batches, f"epoch {epoch}", unit="batch", disable=not self.progress, every=0, interval=30)
        for b, (ids, mode, weight) in enumerate(bar):
            x, denom = None, None
            if mode == "select":
                x = self.data.x(ids, train=True)  # scored, explained and updated: the very same windows
                keep, log = self.select(epoch, ids, gen, x, count=None if counts is None else int(counts[b]))
                record(ids, log, keep)
                if self.selector.reweights(epoch):
                    weight = log["weight"][keep]
                    # InfoBatch per batch: the weighted sum over the pool size, an unbiased batch gradient
                    denom = len(ids) if self.selector.importance_weighted else None
                ids, x = ids[keep], x[keep]
            if len(ids):
                losses.append((self.update(ids, x, weight, denom, epoch), len(ids)))
        self.sched.step()
        selection = {k: torch.cat(v).cpu().numpy() for k, v in fields.items()}
        runio.write_npz(self.run_dir / "selection" / f"epoch_{epoch:03d}.npz", **selection)
        n_loss = sum(n for _, n in losses)
        return {
            "train_loss": sum(l * n for l, n in losses) / n_loss if n_loss else float("nan"),
            "n_train": len(train_ids),
            "n_scored": int(np.isfinite(selection["p"]).sum()),
            "n_pdd_kept": int(selection["pdd_keep"].sum()),
            "n_erts_kept": int(selection["erts_keep"].sum()),
            "n_rescued": int(selection["rescued"].sum()),
            "n_updated": int(selection["updated"].sum()),
        }

    # ---------------------------------------------------------------- evaluation
    def predict(self, split: str) -> tuple[np.ndarray, float]:
        """Probabilities and mean loss on a split (eval mode, inference mode)."""
        self.model.eval()
        ids = self.idx[split]
        probs, loss_sum = [], 0.0
        with self.cost.phase("eval", len(ids)), torch.inference_mode():
            for chunk in ids.split(self.score_bs):
                logits = self.forward_logits(self.data.x(chunk))
                loss_sum += float(self.loss_fn(logits, self.data.y[chunk])) * len(chunk)
                probs.append(torch.sigmoid(logits) if self.data.multilabel else torch.softmax(logits, 1))
        return torch.cat(probs).cpu().numpy(), loss_sum / max(len(ids), 1)

    def evaluate(self, split: str, thresholds: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
        probs, loss = self.predict(split)
        y = self.rs.labels[self.rs.indices(split)]
        if self.rs.multilabel and thresholds is None:
            thresholds = tune_thresholds(y, probs)
        m = compute_metrics(y, probs, self.rs.class_names, multilabel=self.rs.multilabel, thresholds=thresholds)
        m["loss"] = loss
        return m, probs

    # ---------------------------------------------------------------- state
    def state(self, epoch: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "epoch": epoch, "best_f1": self.best_f1,
                "best_epoch": self.best_epoch, "cost": self.cost.snapshot(), "bank": self.bank.state_dict(),
                "selector": self.selector.state_dict()}

    def load_state(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.cost.restore(ckpt["cost"])
        if "bank" in ckpt:  # runs of erts <= 0.1 have none
            self.bank.load_state_dict(ckpt["bank"])
            self.selector.load_state_dict(ckpt["selector"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_f1, self.best_epoch = float(ckpt["best_f1"]), int(ckpt["best_epoch"])
        rows = runio.read_csv(self.run_dir / "log.csv")
        legacy = legacy_log_columns(rows[0]) if rows else {}  # a run started before the cost-column scheme
        self.log_rows = [{legacy.get(k, k): v for k, v in r.items()} for r in rows if int(r["epoch"]) < self.start_epoch]

    def fit(self) -> None:
        """Runs the remaining epochs. Each epoch's seconds add up to its wall clock: time no phase
        measured (rules, log and checkpoint writes, the previous epoch's last.pt) is ``other``."""
        ckpt_dir = self.run_dir / "checkpoints"
        total = self.cfg.train.epochs
        epochs = range(self.start_epoch, total)
        print(f"schedule   {self.selector.schedule.describe()}", flush=True)
        desc = "epochs"
        if self.start_epoch:  # resumed: the bar counts the epochs left, and says which they are
            desc = f"epochs {self.start_epoch}-{total - 1} of 0-{total - 1}" if len(epochs) else "epochs"
            print(f"resumed    epochs 0-{self.start_epoch - 1} of 0-{total - 1} done; "
                  + (f"{len(epochs)} to go" if len(epochs) else "only the final evaluation is left"), flush=True)
        bar = progress_bar(epochs, desc, unit="epoch", disable=not self.progress, every=1, leave=True)
        mark, cpu_mark = time.perf_counter(), time.process_time()
        for epoch in bar:
            before = self.cost.snapshot()
            lr = self.opt.param_groups[0]["lr"]
            stats = self.run_epoch(epoch)
            val, _ = self.evaluate("val")
            self.cost.add_other(time.perf_counter() - mark, before, time.process_time() - cpu_mark)
            mark, cpu_mark = time.perf_counter(), time.process_time()
            after = self.cost.snapshot()
            row = {"epoch": epoch, "phase": self.selector.phase(epoch), "lr": lr, "train_loss": stats.pop("train_loss"),
                   "val_loss": val["loss"], "val_macro_f1": val["macro_f1"], "val_accuracy": val["accuracy"],
                   "val_macro_auroc": val["macro_auroc"], **stats,
                   "kept_frac": stats["n_updated"] / stats["n_train"],
                   "effective_epochs": after["updated"] / stats["n_train"],
                   **epoch_row(before, after)}
            self.log_rows.append(row)
            if val["macro_f1"] > self.best_f1:
                self.best_f1, self.best_epoch = val["macro_f1"], epoch
                runio.save_checkpoint(ckpt_dir / "best.pt", {"model": self.model.state_dict(), "epoch": epoch})
            runio.write_csv(self.run_dir / "log.csv", self.log_rows)
            runio.save_checkpoint(ckpt_dir / "last.pt", self.state(epoch))
            bar.set_postfix(val_f1=f"{val['macro_f1']:.3f}", kept=f"{row['kept_frac']:.2f}")

    def finish(self) -> dict:
        """Loads the best epoch, tunes multi-label thresholds on val, evaluates test once."""
        best = runio.load_checkpoint(self.run_dir / "checkpoints" / "best.pt", self.device)
        self.model.load_state_dict(best["model"])
        val, _ = self.evaluate("val")
        test, probs = self.evaluate("test", np.array(val["thresholds"]) if self.rs.multilabel else None)
        test_idx = self.rs.indices("test")
        runio.write_npz(self.run_dir / "predictions_test.npz", record_ids=self.rs.record_ids[test_idx].astype(str),
                        y_true=self.rs.labels[test_idx], probs=probs.astype(np.float32),
                        **({"thresholds": np.array(val["thresholds"], dtype=np.float32)} if self.rs.multilabel else {}))
        cfg = self.cfg
        metrics = {"run": self.run_dir.name, "dataset": cfg.data.dataset, "model": cfg.model.model,
                   "method": cfg.selection.method, "granularity": cfg.selection.granularity, "seed": cfg.train.seed,
                   "loss": self.loss_name, "class_names": list(self.rs.class_names), "multilabel": self.rs.multilabel,
                   "epochs": cfg.train.epochs, "best_epoch": self.best_epoch, "val": val, "test": test,
                   "cost": self.cost.summary(len(self.idx["train"])),
                   "device": str(self.device), "skipped_records": len(self.rs.skipped),
                   "provenance": runio.read_provenance(self.run_dir)}
        runio.write_json(self.run_dir / "metrics.json", metrics)
        return metrics


def load_kept_counts(run_dir: str, trainer: Trainer) -> dict[int, np.ndarray]:
    """Per select epoch, the per-pool counts of the rule's kept samples (``pdd_keep``) of another
    run, for SMRD to replay exactly (``smrd_schedule``): one count per batch of that run, or one
    per epoch for per-epoch selection. The runs must share the training set, the schedule and,
    per batch, the batch size and granularity."""
    from erts.config import ConfigError

    ref = Path(run_dir)
    if not (ref / "config.yaml").exists():
        raise ConfigError(f"smrd_schedule={run_dir}: not a run folder (no config.yaml)")
    ref_cfg = load_config_from_run(ref)
    ours, theirs = trainer.selector.schedule, Selector(ref_cfg.selection, ref_cfg.train.epochs).schedule
    if (ours.warmup, ours.revision) != (theirs.warmup, theirs.revision):
        raise ConfigError(f"smrd_schedule={run_dir}: its select epochs ({theirs.describe()}) differ from "
                          f"this run's ({ours.describe()})")
    per_batch = trainer.cfg.selection.granularity == "batch"
    if per_batch and (ref_cfg.selection.granularity != "batch" or ref_cfg.optim.batch_size != trainer.cfg.optim.batch_size):
        raise ConfigError(f"smrd_schedule={run_dir}: per-batch replay needs a per-batch run with "
                          f"batch_size={trainer.cfg.optim.batch_size}")
    n_train, bs = len(trainer.idx["train"]), ref_cfg.optim.batch_size
    counts: dict[int, np.ndarray] = {}
    for epoch in ours.epochs_in("select"):
        f = ref / "selection" / f"epoch_{epoch:03d}.npz"
        if not f.exists():
            raise ConfigError(f"smrd_schedule={run_dir}: no selection log for epoch {epoch} ({f.name})")
        kept = np.load(f)["pdd_keep"]
        if len(kept) != n_train:
            raise ConfigError(f"smrd_schedule={run_dir}: epoch {epoch} logged {len(kept)} samples, "
                              f"this run trains on {n_train}")
        counts[epoch] = np.array([c.sum() for c in np.array_split(kept, range(bs, len(kept), bs))]) if per_batch \
            else np.array([kept.sum()])
    return counts


def write_train_records(rs: RecordSet, path: Path) -> None:
    """One row per training record with any ground-truth columns (for analyses, never model input)."""
    import pandas as pd

    idx = rs.indices("train")
    if rs.multilabel:
        names = np.array(rs.class_names)
        label = [";".join(names[row > 0.5]) for row in rs.labels[idx]]
    else:
        label = np.array(rs.class_names)[rs.labels[idx]]
    df = pd.DataFrame({"index": idx, "record_id": rs.record_ids[idx], "label": label})
    for col in GROUND_TRUTH_COLUMNS:
        if col in rs.meta.columns:
            df[col] = rs.meta[col].to_numpy()[idx]
    runio.write_text(path, df.to_csv(index=False))


def run_dir_for(cfg: Config) -> Path:
    return Path(cfg.train.out_dir) / cfg.run_name()


def train(cfg: Config, *, resume: bool = False, progress: bool | None = None) -> dict:
    """Trains (or resumes) one run and returns its final metrics (also in metrics.json)."""
    run_dir = run_dir_for(cfg)
    progress = not cfg.train.quiet if progress is None else progress
    last = run_dir / "checkpoints" / "last.pt"
    if not resume and (run_dir / "log.csv").exists():
        raise FileExistsError(f"{run_dir} already holds a run; use `erts train --resume {run_dir}` "
                              f"to continue it, or choose another name=")
    rs = load_dataset(cfg.data)
    run_dir.mkdir(parents=True, exist_ok=True)
    runio.write_text(run_dir / "config.yaml", dump_config(cfg))
    runio.record_start(run_dir, resumed=resume)  # run.json: erts version, git commit, command line
    trainer = Trainer(cfg, rs, run_dir, progress=progress)
    if resume and last.exists():
        trainer.load_state(runio.load_checkpoint(last, trainer.device))
    else:
        write_train_records(rs, run_dir / "train_records.csv")
    trainer.fit()
    return trainer.finish()


def load_config_from_run(run_dir: str | Path) -> Config:
    return config_from_dict(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()))


def is_finished(run_dir: str | Path) -> bool:
    """The run completed: its final metrics.json (written after the test evaluation) exists."""
    return (Path(run_dir) / "metrics.json").exists()


def resume(run_dir: str | Path, *, progress: bool | None = None) -> dict:
    """Continues a killed run from its last completed epoch; a finished run's metrics are returned
    as they are (nothing is retrained or re-evaluated)."""
    if is_finished(run_dir):
        import json

        return json.loads((Path(run_dir) / "metrics.json").read_text())
    cfg = load_config_from_run(run_dir)
    cfg.train.out_dir, cfg.train.name = str(Path(run_dir).parent), Path(run_dir).name
    return train(cfg, resume=True, progress=progress)


def load_run(run_dir: str | Path, which: str = "best") -> tuple[Config, torch.nn.Module, RecordSet]:
    """The run's config, its model with the ``which`` checkpoint loaded (eval mode, CPU), and its dataset."""
    cfg = load_config_from_run(run_dir)
    rs = load_dataset(cfg.data)
    model = build_model(cfg, rs)
    model.load_state_dict(runio.load_checkpoint(Path(run_dir) / "checkpoints" / f"{which}.pt")["model"])
    return cfg, model.eval(), rs
