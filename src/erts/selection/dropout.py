"""Data dropout and ERTS for any training loop: ``DataDropout``.

    dd = DataDropout(model, method="erts-dbpd", num_samples=len(train_set), epochs=30, tau=0.3, phi=0.7)
    for epoch in range(30):
        for x, y, idx in loader:                                  # idx: the samples' dataset indices
            x, y, idx, weight = dd.select(x, y, idx, epoch)       # the samples to update (may be empty)
            if len(idx) == 0:
                continue
            logits = model(x)
            loss = (dd.per_sample_loss(logits, y) * weight).mean()
            ...
        dd.epoch_end(epoch)
    print(dd.summary())

One implementation: erts' own Trainer selects through this class too. It holds the
rule and its schedule (``Selector``), the per-sample score bank, the cost meter,
and how scores and Grad-CAM focus are measured on the model:

- the model is an erts model, or any module exposing ``forward_features`` and a
  ``head`` (erts' ``ClassifierHead`` or ``ConcatPoolHead``, or an ``nn.Linear``
  after global average pooling): Grad-CAM at the last stage is exact from the
  scoring pass's own features (no backward);
- any other model, or another layer (``gradcam_layer="layer3"``): autograd
  Grad-CAM at that named submodule, on the candidates only.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from erts.config import ConfigError, SelectionConfig
from erts.distributed import Dist, gather_pool, shard
from erts.selection.bank import ScoreBank
from erts.selection.selector import PoolScores, Selection, Selector
from erts.train.cost import CostMeter

LOG_FIELDS = ("index", "p", "focus", "pdd_keep", "erts_keep", "rescued", "filter_cand", "weight", "updated")


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


def el2n(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """EL2N (Paul et al. 2021): the L2 norm of probabilities minus the one-hot (multi-hot) labels."""
    logits = logits.float()
    if multilabel:
        return (torch.sigmoid(logits) - y).norm(dim=1)
    probs = torch.softmax(logits, 1)
    return (probs - F.one_hot(y, probs.shape[1]).float()).norm(dim=1)


def default_per_sample_loss(multilabel: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy per sample (multi-label: binary cross-entropy averaged over the classes)."""
    if multilabel:
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="none").mean(1)
    return lambda logits, y: F.cross_entropy(logits.float(), y, reduction="none")


class _LinearHead:
    """Grad-CAM's view of a plain ``nn.Linear`` applied after global average pooling."""

    def __init__(self, fc: nn.Linear):
        self.fc, self.num_classes = fc, fc.out_features

    @staticmethod
    def pool(feats: torch.Tensor) -> torch.Tensor:
        return feats.flatten(2).mean(-1)

    def grad_pooled(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return weights.to(z.dtype) @ self.fc.weight.to(z.dtype)


class DataDropout:
    """Which samples of a pool get the update, for method ``method`` at each epoch (see module doc).

    ``settings`` are erts selection settings by name (tau, phi, gamma, warmup_epochs, focus_q,
    infobatch_r, ...; ``erts train --keys`` lists them), validated like a config.
    """

    def __init__(self, model: nn.Module, method: str = "erts-dbpd", *, num_samples: int, epochs: int,
                 multilabel: bool = False, gradcam_layer: str = "last", device: torch.device | str | None = None,
                 per_sample_loss: Callable | None = None, score_batch_size: int = 256, seed: int = 0,
                 bf16: bool = False, cost: CostMeter | None = None, selection: SelectionConfig | None = None,
                 dist: Dist | None = None, input_length: int = 0, **settings: Any):
        if selection is None:
            from erts.config import load_config

            if "update_batches" in settings:
                raise ConfigError("update_batches is erts' trainer's (how its steps batch the kept samples); "
                                 "DataDropout only selects: in your loop, queue what select returns with "
                                 "erts.selection.queue.UpdateQueue (docs/api.md)")
            cfg = load_config(overrides={"method": method, "epochs": epochs, "gradcam_layer": gradcam_layer,
                                         **settings})
            selection = cfg.selection
        self.cfg = selection
        self.model, self.multilabel, self.seed, self.bf16 = model, multilabel, seed, bf16
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.selector = Selector(selection, epochs, seed)
        self.bank = ScoreBank(num_samples, self.device)
        self.cost = cost if cost is not None else CostMeter(self.device)
        self._loss_fn = per_sample_loss or default_per_sample_loss(multilabel)
        self._returned: tuple[torch.Tensor, int] | None = None  # ids the last select() returned, and its epoch
        self.score_bs = score_batch_size
        self.set_model(model)
        self._log: dict[str, list] = {k: [] for k in LOG_FIELDS}
        self._gen: tuple[int, torch.Generator] | None = None
        self._epochs: list[dict] = []
        # samples per model input: focus maps are read at this resolution (each pool's ``select`` also says)
        self._length = input_length
        self.weights = torch.ones(num_samples, device=self.device)  # per-epoch selection: each kept sample's weight
        self._epoch_of_sampler = 0  # the epoch epoch_indices() last selected for
        # distributed training: a shared pool (the same on every rank) is scored and explained in shares
        self.dist = dist if dist is not None else Dist()
        self._shared = False

    # ------------------------------------------------------------ the model
    def set_model(self, model: nn.Module) -> None:
        """Selects for ``model`` from now on (its Grad-CAM layer and fast path resolved again)."""
        self.model = model
        self.layer = self._resolve_layer(self.cfg.gradcam_layer)
        self.cam_fast = self._fast_head() is not None and self._is_last_stage(self.layer)

    def _split(self) -> bool:
        return hasattr(self.model, "forward_features") and hasattr(self.model, "forward_head")

    def _fast_head(self):
        head = getattr(self.model, "head", None)
        if not self._split() or head is None:
            return None
        if hasattr(head, "grad_pooled"):
            return head
        return _LinearHead(head) if isinstance(head, nn.Linear) else None

    def _resolve_layer(self, name: str) -> nn.Module | None:
        if hasattr(self.model, "get_layer"):
            from erts.config import ConfigError

            try:
                return self.model.get_layer(name)
            except ValueError as e:
                raise ConfigError(f"gradcam_layer={name!r}: {e}") from None
        if name == "last":
            return None  # the fast path's features, when the model exposes them
        try:
            return self.model.get_submodule(name)
        except AttributeError:
            from erts.config import ConfigError

            raise ConfigError(f"gradcam_layer={name!r}: the model has no submodule {name!r}") from None

    def _is_last_stage(self, layer: nn.Module | None) -> bool:
        if layer is None:
            return True
        return hasattr(self.model, "get_layer") and layer is self.model.get_layer("last")

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        with self.autocast():
            if self._split():
                f = self.model.forward_features(x)
                return f, self.model.forward_head(f).float()
            return None, self.model(x).float()

    # ------------------------------------------------------------ scores and focus
    def score(self, ids: torch.Tensor, y: torch.Tensor, member: torch.Tensor,
              inputs: Callable[[slice], torch.Tensor], want_focus: bool, epoch: int = -1,
              train_ids: torch.Tensor | None = None) -> PoolScores:
        """Scoring pass over a pool: p, correct, loss and EL2N per sample (written to the score bank),
        in eval mode under inference mode (``score_mode=train``: the published train-mode no_grad).

        ``inputs(s)`` gives the pool's inputs for the slice ``s`` of the pool. With ERTS at the last
        stage, each chunk's Grad-CAM comes from the features this pass computed and is reduced to
        a focus score at once (counted as Grad-CAM): a whole-epoch pool never holds feature maps.
        """
        fused = want_focus and self.cam_fast
        d = self.dist
        if self._in_shares(len(ids)):  # each rank scores its share; all get the whole
            pos = shard(len(ids), d, ids.device)
            mine = self._score_pass(ids[pos], y[pos], lambda s: inputs(pos[s]), fused)
            parts = {k: None if v is None else gather_pool(v, len(ids), d) for k, v in mine.items()}
        else:
            parts = self._score_pass(ids, y, inputs, fused)
        scores = PoolScores(parts["p"], parts["c"], member, p_label=parts["pl"], focus_all=parts["focus"],
                            loss=parts["loss"], el2n=parts["el2n"])
        self.bank.write(ids, epoch, p=scores.p, correct=scores.correct, loss=scores.loss, el2n=scores.el2n,
                        focus=scores.focus_all, local=not self._shared)
        scores.loss_mean = self._loss_mean(train_ids)
        return scores

    def _in_shares(self, n: int) -> bool:
        """Distributed, on a shared pool of ``n`` (at least one per rank): each rank takes its share."""
        return self._shared and self.dist.enabled and n >= self.dist.world

    def _score_pass(self, ids: torch.Tensor, y: torch.Tensor, inputs: Callable[[slice], torch.Tensor],
                    fused: bool) -> dict[str, torch.Tensor | None]:
        """The forward over ``ids`` (and the fused last-stage focus): p, correct, per-label p, loss, EL2N."""
        published = self.cfg.score_mode == "train"
        self.model.train(published)  # published pitfall: train mode updates BatchNorm statistics
        parts: dict[str, list] = {k: [] for k in ("p", "c", "pl", "loss", "el2n", "focus")}
        grad_ctx = torch.no_grad if published else torch.inference_mode
        for start in range(0, len(ids), self.score_bs):
            s = slice(start, start + self.score_bs)
            yc = y[s]
            with self.cost.phase("scoring", len(ids[s])), grad_ctx():
                f, logits = self._forward(inputs(s))
                p, c, pl = confidence(logits, yc, self.multilabel, self.cfg.confidence)
                parts["loss"].append(self._loss_fn(logits, yc))
                parts["el2n"].append(el2n(logits, yc, self.multilabel))
            parts["p"].append(p)
            parts["c"].append(c)
            parts["pl"].append(pl)
            if fused:
                parts["focus"].append(self.fast_focus(f, yc, logits.shape[1]))
        out = {k: torch.cat(v) for k, v in parts.items() if k not in ("pl", "focus")}
        out["pl"] = torch.cat(parts["pl"]) if self.multilabel else None
        out["focus"] = torch.cat(parts["focus"]) if fused else None
        return out

    def _loss_mean(self, train_ids: torch.Tensor | None) -> float | None:
        """InfoBatch's threshold: the mean last-known loss over the training set (every sample the
        bank has seen when the caller does not say which rows are the training set); None for the
        other rules, which never read it (a reduction over N and a device sync per pool saved)."""
        if self.selector.rule != "infobatch":
            return None
        if train_ids is not None:
            return float(self.bank.loss[train_ids].mean())
        seen = self.bank.seen_epoch >= 0
        return float(self.bank.loss[seen].mean()) if seen.any() else 1.0

    def fast_focus(self, feats: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Focus of the true class from last-stage features (no extra forward or backward)."""
        from erts.explain.gradcam import _cam, target_weights

        head = self._fast_head()
        with self.cost.phase("gradcam", len(y), forward=False), torch.inference_mode():
            a = feats.float()
            w = target_weights(y, a.shape[0], num_classes)
            alpha = head.grad_pooled(head.pool(a), w) / a[0, 0].numel()
            maps, _ = _cam(alpha, a)
            return self.focus_of(maps, self._length)

    def focus(self, ids: torch.Tensor, y: torch.Tensor, scores: PoolScores, candidates: torch.Tensor,
              inputs: Callable[[torch.Tensor], torch.Tensor], num_classes: int) -> None:
        """Grad-CAM focus of the candidates (NaN for the others, as in the selection log).

        Fast path: already computed by the scoring pass (or, with ``score_source=update``, kept
        in the score bank from the sample's last update). Any other layer, and a candidate the
        bank has no focus for yet: Grad-CAM on those candidates only (autograd: a forward and a
        backward to the layer; at the last stage a forward alone). ``inputs(positions)`` gives
        the inputs of those positions of the pool.
        """
        from erts.explain.gradcam import _autograd_cam, eval_mode, target_weights

        sel = torch.nonzero(candidates).squeeze(1)
        focus = torch.full((len(ids),), float("nan"), device=self.device)
        if scores.focus_all is not None:
            focus[sel] = scores.focus_all[sel]
            sel = sel[focus[sel].isnan()]
        d = self.dist
        split = self._in_shares(len(sel))  # each rank explains its share
        mine = sel[shard(len(sel), d, sel.device)] if split else sel
        if len(mine):
            fast = self.cam_fast
            with self.cost.phase("gradcam", len(mine), forward=True, backward=not fast):
                for chunk in mine.split(self.score_bs):
                    x = inputs(chunk)
                    with eval_mode(self.model):
                        if fast:
                            with torch.no_grad():
                                f, logits = self._forward(x)
                            focus[chunk] = self.fast_focus(f, y[chunk], logits.shape[1])
                            continue
                        layer = self.layer if self.layer is not None else self.model.get_layer("last")
                        w = target_weights(y[chunk], len(chunk), num_classes)
                        _, maps, _ = _autograd_cam(self.model, x, w, layer)
                    focus[chunk] = self.focus_of(maps, x.shape[-1])
        if split:
            focus[sel] = gather_pool(focus[mine], len(sel), d)
        scores.focus = focus

    def focus_of(self, maps: torch.Tensor, length: int) -> torch.Tensor:
        """Focus of (B, T') Grad-CAM maps by the configured measure, read at the input's resolution
        (``focus_resolution=input``, maps upsampled to ``length``) or the layer's."""
        from erts.explain.gradcam import focus_measure, upsample_to

        maps = maps.float()
        if self.cfg.focus_resolution == "input" and length:
            maps = upsample_to(maps, length)
        return focus_measure(maps, self.cfg.focus_measure, self.cfg.focus_q)

    # ------------------------------------------------------------ selection of one pool
    def select_pool(self, epoch: int, ids: torch.Tensor, y: torch.Tensor, member: torch.Tensor,
                    inputs: Callable[[Any], torch.Tensor], generator: torch.Generator, num_classes: int,
                    count: int | None = None, train_ids: torch.Tensor | None = None,
                    length: int = 0, shared: bool = False) -> tuple[Selection, dict]:
        """The rule (and the focus filter) on one pool, scored by a pass or from the bank; returns
        the masks and the pool's selection-log fields. ``inputs`` takes a slice or a tensor of
        positions in the pool. ``shared``: distributed, the pool is the same on every rank (per-epoch
        selection): each rank scores and explains its share, and the rule runs on the whole pool
        on every rank alike (same generator state, so the same kept set everywhere)."""
        sel = self.selector
        self._length, self._shared = length, shared
        nan = torch.full((len(ids),), float("nan"), device=self.device)
        scores = None
        if sel.needs_pass(epoch):
            scores = self.score(ids, y, member, inputs, sel.cam_active(epoch), epoch, train_ids)
        elif sel.needs_scores(epoch):  # last known values, from the bank
            scores = self.bank.scores(ids, member)
            scores.loss_mean = self._loss_mean(train_ids)
            if self.multilabel:
                scores.p_label = None  # the bank keeps p only; multi-label rescue then ranks by it
            if not (sel.cam_active(epoch) and self.cam_fast):
                scores.focus_all = None
        if scores is not None and sel.rule == "rho-loss":
            scores.irreducible = self.irreducible_of(ids)
        universe = train_ids if train_ids is not None else torch.arange(len(self.bank.p), device=self.device)
        result = sel.select(epoch, member, scores, generator,
                            focus_fn=lambda cand: self.focus(ids, y, scores, cand, inputs, num_classes), count=count,
                            ids=ids, universe=universe)
        weight = result.weight if result.weight is not None else torch.ones(len(ids), device=self.device)
        log = {"index": ids, "p": scores.p if scores is not None else nan,
               "focus": scores.focus if scores is not None and scores.focus is not None else nan,
               "pdd_keep": result.candidates, "erts_keep": result.keep, "rescued": result.rescued,
               "filter_cand": result.ranked if result.ranked is not None else torch.zeros_like(result.keep),
               "weight": torch.where(result.keep, weight, torch.zeros_like(weight)), "updated": result.keep}
        return result, log

    # ------------------------------------------------------------ RHO-LOSS's irreducible losses
    def set_irreducible_loss(self, ids: torch.Tensor, losses: torch.Tensor) -> None:
        """rho-loss: each sample's irreducible loss, the loss of a model that never trained on it
        (``erts.train.irreducible`` computes them for erts' Trainer; in your own loop, give yours).
        Kept in the score bank, so a checkpoint of ``state_dict()`` keeps them."""
        self.bank.irreducible[ids.to(self.device)] = losses.to(self.device).float()

    @property
    def needs_irreducible(self) -> bool:
        """rho-loss and no irreducible loss yet (a resumed run has them from its checkpoint)."""
        return self.selector.rule == "rho-loss" and bool(self.bank.irreducible.isnan().all())

    def irreducible_of(self, ids: torch.Tensor) -> torch.Tensor:
        """The pool's irreducible losses; an error that says what to do when one is missing."""
        il = self.bank.irreducible[ids]
        if bool(il.isnan().any()):
            raise RuntimeError("rho-loss needs every training sample's irreducible loss before its first select "
                               "epoch: erts' Trainer computes them; in your own loop call "
                               "dd.set_irreducible_loss(ids, losses) (erts.train.irreducible)")
        return il

    def record_update(self, ids: torch.Tensor, feats: torch.Tensor | None, logits: torch.Tensor,
                      per_sample: torch.Tensor, y: torch.Tensor, epoch: int) -> None:
        """``score_source=update``: the updated samples' scores from their own training forward
        (call before the optimiser step; train-mode BatchNorm: batch statistics, so they differ
        slightly from an eval-mode pass; the head's Grad-CAM is taken in eval form)."""
        if self.selector.score_source != "update":
            return
        p, c, _ = confidence(logits, y, self.multilabel, self.cfg.confidence)
        focus = None
        if self.selector.uses_cam and self.cam_fast and feats is not None:
            focus = self.fast_focus(feats, y, logits.shape[1])
        self.bank.write(ids, epoch, p=p, correct=c, loss=per_sample, el2n=el2n(logits, y, self.multilabel),
                        focus=focus)

    # ------------------------------------------------------------ the user-facing loop API
    @property
    def epochs(self) -> int:
        """Epochs to train: the ``epochs`` given, or for full with a budget the compressed count."""
        return self.selector.epochs

    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """The per-sample training loss of your update's forward. It also records each sample's loss
        (and p, EL2N) in the score bank for the rules that read it from the update (InfoBatch,
        ``score_source=update``), as InfoBatch's ``dataset.update(loss)`` does: for ``idx``, or
        for the samples the last ``select`` returned when ``idx`` is not given."""
        per_sample = self._loss_fn(logits, y)
        if idx is None and self._returned is not None and len(self._returned[0]) == len(y):
            idx = self._returned[0]
        if idx is not None and self.selector.score_source == "update" and len(idx):
            epoch = self._returned[1] if self._returned is not None else self._epoch_of_sampler
            self.record_update(idx.to(self.device), None, logits.detach(), per_sample.detach(), y.to(self.device), epoch)
        return per_sample

    def loss(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The update's loss for a batch of the samples ``idx`` from per-epoch selection
        (``EpochSampler``): per-sample losses recorded (``per_sample_loss``), weighted by the
        rule's ``weights[idx]`` (InfoBatch's 1 / (1 - r)) and averaged over the batch."""
        idx = idx.to(self.device)
        return (self.per_sample_loss(logits, y, idx) * self.weights[idx]).mean()

    def generator(self, epoch: int) -> torch.Generator:
        """The rule's random draws for ``epoch``: reproducible from (seed, epoch)."""
        if self._gen is None or self._gen[0] != epoch:
            self._gen = (epoch, torch.Generator().manual_seed((self.seed * 1_000_003 + epoch * 1009 + 1) % 2**63))
        return self._gen[1]

    def _member(self, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        return (y > 0.5) if self.multilabel else F.one_hot(y, num_classes).bool()

    def select(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, epoch: int,
               num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-batch selection in your loop: returns the kept ``x, y, idx`` and their loss weights
        (1, or InfoBatch's 1 / (1 - r)); multiply your per-sample loss by the weights. The batch
        is scored, explained and (by you) updated on the very same ``x``."""
        x, y, idx = x.to(self.device), y.to(self.device), idx.to(self.device)
        k = num_classes or self._num_classes(x, y)
        result, log = self.select_pool(epoch, idx, y, self._member(y, k), lambda s: x[s], self.generator(epoch), k,
                                       length=x.shape[-1])
        for name in LOG_FIELDS:
            self._log[name].append(log[name])
        keep = result.keep
        self._returned = (idx[keep], epoch)
        return x[keep], y[keep], idx[keep], log["weight"][keep]

    def epoch_indices(self, epoch: int, dataset, num_classes: int | None = None) -> torch.Tensor:
        """Per-epoch selection: scores every sample of ``dataset`` (items ``(x, y, ...)``, indexed by
        their dataset index), applies the rule and the filter once, and returns the kept indices.
        Their loss weights are ``dd.weights[idx]``. Train on them in any order; ``EpochSampler``
        wraps this for a DataLoader. Under torchrun (``dist=erts.distributed.from_env()``) each
        rank scores its share of the dataset and every rank gets the same global kept set."""
        n = len(dataset)
        ids = torch.arange(n, device=self.device)
        y = torch.stack([torch.as_tensor(dataset[i][1]) for i in range(n)]).to(self.device)

        def inputs(s):
            rows = range(n)[s] if isinstance(s, slice) else s.tolist()
            return torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in rows]).to(self.device)

        k = num_classes or self._num_classes(inputs(slice(0, 1)), y)
        result, log = self.select_pool(epoch, ids, y, self._member(y, k), inputs, self.generator(epoch), k,
                                       train_ids=ids, length=inputs(slice(0, 1)).shape[-1], shared=True)
        for name in LOG_FIELDS:
            self._log[name].append(log[name])
        self.weights = log["weight"]
        self._returned, self._epoch_of_sampler = None, epoch
        return ids[result.keep]

    def _num_classes(self, x: torch.Tensor, y: torch.Tensor) -> int:
        if self.multilabel:
            return y.shape[1]
        k = getattr(self.model, "num_classes", None)
        if k is None:
            with torch.no_grad(), torch.inference_mode():
                was = self.model.training
                self.model.eval()
                k = self._forward(x[:1])[1].shape[1]
                self.model.train(was)
            self.model.num_classes = k
        return int(k)

    def epoch_end(self, epoch: int) -> dict:
        """Closes an epoch: returns its counts and per-sample log (numpy), and resets the log."""
        log = {k: torch.cat(v).cpu().numpy() for k, v in self._log.items()} if self._log["index"] else {}
        self._log = {k: [] for k in LOG_FIELDS}
        n = len(log.get("index", []))
        stats = {"epoch": epoch, "phase": self.selector.phase(epoch), "n_pool": n,
                 "n_kept": int(log["updated"].sum()) if n else 0, "n_rescued": int(log["rescued"].sum()) if n else 0,
                 "n_filtered": int((log["pdd_keep"] & ~log["erts_keep"]).sum()) if n else 0}
        self.cost.updated += stats["n_kept"]
        self._epochs.append(stats)
        return {**stats, "log": log}

    def summary(self, num_samples: int | None = None) -> dict:
        """Effective epochs, forwards, backwards, FLOPs and seconds per phase (scoring and Grad-CAM
        included; the update phase is counted when the loop uses ``update_phase``)."""
        n = num_samples or len(self.bank.p)
        return {**self.cost.summary(n), "epochs": list(self._epochs)}

    def update_phase(self, n_samples: int):
        """Wrap your forward/backward/step in this to have the update counted and timed."""
        return self.cost.phase("update", n_samples, forward=True, backward=True)

    def state_dict(self) -> dict:
        return {"bank": self.bank.state_dict(), "selector": self.selector.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.bank.load_state_dict(state["bank"])
        self.selector.load_state_dict(state["selector"])



class EpochSampler(torch.utils.data.Sampler):
    """A DataLoader sampler that yields, each epoch, the kept indices of ``dd.epoch_indices`` in a
    seeded random order. Call ``set_epoch(epoch)`` before each epoch (as with DistributedSampler).
    Distributed (``dd.dist``), it yields this rank's share of that order, padded as
    DistributedSampler pads: every rank gets ceil(kept / world) indices, so ranks step together."""

    def __init__(self, dd: DataDropout, dataset, num_classes: int | None = None):
        self.dd, self.dataset, self.num_classes, self.epoch = dd, dataset, num_classes, 0
        self._kept: torch.Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._kept = epoch, None

    def _indices(self) -> torch.Tensor:
        if self._kept is None:
            kept = self.dd.epoch_indices(self.epoch, self.dataset, self.num_classes).cpu()
            order = torch.randperm(len(kept), generator=torch.Generator().manual_seed(self.dd.seed * 7919 + self.epoch))
            kept, d = kept[order], self.dd.dist
            if d.enabled and len(kept):
                per_rank = -(-len(kept) // d.world)
                kept = kept.repeat(-(-per_rank * d.world // len(kept)))[:per_rank * d.world][d.rank::d.world]
            self._kept = kept
        return self._kept

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        return len(self._indices())
