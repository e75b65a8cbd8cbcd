"""Run configuration: dataclasses loaded from YAML plus ``key=value`` overrides.

Why dataclasses: every setting has one place, one type and one default, and a
typo is an error that names the key and what is accepted instead of a setting
that silently does nothing. Configs reach code only through builder functions
(``build_*``), never as a bag of options threaded through the loop.

Keys may be given flat (``phi=0.7``) or dotted (``selection.phi=0.7``); every
leaf name is unique across sections so the flat form is never ambiguous.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from erts.errors import ConfigError  # noqa: F401 (re-exported: `from erts.config import ConfigError` keeps working)
from erts.registry import DATASETS, check_dataset
from erts.selection.schedule import Schedule, budget_epochs, resolve_schedule, schedule_problem


# selection methods (defined here, not in erts.selection, so validating a config never imports torch)
PDD_RULES = ("dbpd", "smrd", "srd")  # Progressive Data Dropout's rules (easy_keep is theirs)
RULES = (*PDD_RULES, "random", "infobatch", "loss-topk", "el2n", "rho-loss")
METHODS = ("full", *RULES, *(f"erts-{r}" for r in RULES))


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # see `erts data list`
    root: Optional[str] = None  # dataset folder or archive (real datasets)
    cache_dir: Optional[str] = None  # default: $ERTS_CACHE or ~/.cache/erts
    task: str = "default"  # dataset-specific label task (e.g. ptbxl: superdiagnostic)
    split_seed: int = 0  # seeds the stratified split of datasets without official folds
    fs: Optional[float] = None  # resample to this rate (Hz); None keeps the native rate
    length_s: Optional[float] = None  # prepared records are cropped / zero-padded to this many seconds
    length_from: Literal["center", "start"] = "center"  # where longer records are cut (start: the first length_s s)
    crop_s: Optional[float] = None  # train on windows of this length cut from each prepared record (None: whole)
    crop: Literal["center", "random"] = "center"  # where training windows are cut inside each record's real signal (never in its zero padding)
    # how validation, test and the per-epoch scoring pass see a record when crop_s is set: center = the
    # centre window of its real signal; sliding = windows every eval_stride_s over it, their probabilities
    # aggregated per record (the PTB-XL benchmark's protocol; scoring for selection stays on the centre)
    eval_windows: Literal["center", "sliding"] = "center"
    eval_stride_s: Optional[float] = None  # eval_windows=sliding: seconds between window starts (None: half of crop_s)
    eval_aggregate: Literal["mean", "max"] = "mean"  # eval_windows=sliding: a record's probability per class
    bandpass: Optional[list[float]] = None  # [low_hz, high_hz] zero-phase Butterworth band-pass
    # record: each record, each lead to zero mean and unit variance (true is accepted for it); train: one
    # mean and standard deviation fitted on the training split's real samples, applied to every record
    # (the PTB-XL benchmark's StandardScaler; never fitted on validation or test); none: as recorded (false)
    standardize: Literal["record", "train", "none"] = "record"
    nan_policy: Literal["reject", "interpolate"] = "reject"  # what to do with NaNs in a signal
    bad_records: Literal["skip", "fail"] = "skip"  # skip-and-report or stop at the first bad record
    labels: Literal["current", "original", "original-train"] = "current"  # cinc2017 label file (original-train: train/val on the original labels, test on the current ones)
    # built-in synthetic dataset
    n_records: int = 5000  # how many records to generate
    corrupt_frac: float = 0.1  # fraction of records corrupted on purpose (ground truth kept in meta)
    multilabel: bool = False  # several labels per record (multi-hot targets, bce loss)
    # label noise injected into the *training* split of any single-label dataset (validation and test keep
    # their labels): none; symmetric = round(label_noise_rate x n_train) training records drawn at random,
    # each given a random other class; pair = in each of the two label_noise_classes, round(rate x its
    # training records) drawn at random and given the other class. Which were flipped is kept in meta
    # (noise_flipped, label_clean: ground truth for reports and benchmarks, never model input)
    label_noise: Literal["none", "symmetric", "pair"] = "none"
    label_noise_rate: float = 0.2  # label_noise: the share of the (pair: each class's) training records flipped
    label_noise_classes: Optional[list[str]] = None  # label_noise=pair: the two class names swapped (e.g. [N, O])
    label_noise_seed: int = 0  # seeds which records label_noise flips (and, symmetric, to which class)
    # training records set aside by a list, e.g. the first rows of `erts audit`'s audit.csv: a CSV with a
    # record_id column; validation and test are never changed by it (erts.data.exclude)
    exclude_records: Optional[str] = None
    exclude_top: Optional[int] = None  # only the list's first N rows (required for an audit.csv: it ranks every record)


@dataclass
class ModelConfig:
    model: str = "resnet18_1d"  # see erts.models.list_models()
    dropout: float = 0.0  # dropout rate before the classifier head's last linear layer
    # classifier head on the pooled features (mlp: published; concat: the PTB-XL benchmark's, with dropout=0.5)
    head: Literal["linear", "mlp", "concat"] = "linear"
    head_hidden: int = 128  # hidden units of the mlp and concat heads (the published head; the benchmark's lin_ftrs_head)
    lead_rows: int = 32  # 2-D backbones: leads padded to this many image rows
    lead_pad: Literal["below", "center"] = "below"  # 2-D: zero rows below the leads, or half above (published)
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"  # 2-D: auto = channels_last on CPU/CUDA (docs/models.md); 1-D: always contiguous
    # batch: each process normalises by its own batch (PyTorch's default, also under torchrun); sync: by the
    # global batch across processes (SyncBatchNorm, CUDA only); frozen: running statistics, never updated (eval mode)
    batchnorm: Literal["batch", "sync", "frozen"] = "batch"


@dataclass
class OptimConfig:
    lr: float = 1e-3  # AdamW learning rate (peak, before the schedule)
    weight_decay: float = 0.01  # AdamW weight decay
    # learning-rate schedule, stepped once per epoch; onecycle: fastai's fit_one_cycle as the PTB-XL benchmark
    # trains (lr / 25 rising to lr over the first 30 % of the epochs, cosine down to lr / 25e4; beta1 0.95 -> 0.85)
    schedule: Literal["cosine", "step", "constant", "onecycle"] = "cosine"
    step_gamma: float = 0.98  # per-epoch decay of the step schedule
    batch_size: int = 64  # training batch (and the per-batch selection pool)
    # auto: ce for single-label, bce for multi-label. balanced_ce: weights n / (K n_c), weighted mean;
    # cb_ce: class-balanced by effective number (Cui et al. 2019, beta 0.9999, weights sum to K), plain mean
    loss: Literal["auto", "ce", "balanced_ce", "cb_ce", "bce"] = "auto"
    # same: every method uses `loss` (ours). published: full uses ce, every other method cb_ce
    # (the published code's confound, kept only to reproduce it)
    loss_policy: Literal["same", "published"] = "same"


@dataclass
class SelectionConfig:
    method: str = "full"  # full | dbpd | smrd | srd | random | infobatch | loss-topk | el2n | rho-loss, or erts-<rule>
    # the selection pool: each mini-batch (the published PDD code), or the whole epoch (its kept samples then
    # form full batches: fewer steps). auto: epoch for infobatch (the official sampler), random (RS2) and full
    # with a budget; batch for the others. Resolved when the config is loaded
    granularity: Literal["auto", "batch", "epoch"] = "auto"
    # per-batch selection: what an optimiser step of a select epoch trains on. kept = each pool's kept samples
    # (the published PDD code: a step per mini-batch, on fewer samples); full = the kept samples queue until
    # batch_size of them have gathered, and each step trains on a full batch, the rest at the epoch's end
    # (Selective-Backprop's backprop queue; RHO-LOSS's batch selected from a pool 1 / rho_keep times larger).
    # auto: full for loss-topk and rho-loss (their official code), kept for the others. Resolved on load
    update_batches: Literal["auto", "kept", "full"] = "auto"
    # equal-budget controls: the share of a full run's compute (effective epochs / epochs) the run may spend.
    # full: the epochs scaled and the whole learning-rate schedule compressed to them (the last epoch cut
    # short to a random part of the data when budget x epochs is not whole); random: its per-epoch fraction
    # solved from the schedule (warm-up and revision epochs train on everything). None: no budget
    budget: Optional[float] = None
    random_fraction: float = 0.5  # random (RS2): each select epoch trains on this fraction, drawn without replacement across epochs
    # schedule (0-based epochs); None: the published proportions of `epochs` (5 %, 8 %, 50 %, rounded up,
    # each phase at least one epoch): warm-up 5 / Grad-CAM 8 / revision 50 of 100 epochs
    warmup_epochs: Optional[int] = None  # epochs < this train on everything
    gradcam_start: Optional[int] = None  # the focus filter runs in select epochs >= this
    revision_epoch: Optional[int] = None  # epochs >= this train on everything again
    tau: float = 0.3  # DBPD keeps the samples whose true-label confidence p < tau (0: the misclassified ones)
    gamma: float = 0.99  # SRD keeps ceil(gamma^epoch * n) random samples of a pool of n
    phi: float = 0.7  # ERTS: the focus filter keeps this fraction of the rule's kept samples
    # how many of n candidates the focus filter keeps: floor = int(phi * n), at least one (published);
    # ceil = ceil(phi * n)
    phi_round: Literal["floor", "ceil"] = "floor"
    # multi-label confidence p: min = the least-learned label (a sample is hard while any label is not
    # learned); mean = the mean over classes (easy negatives dominate it)
    confidence: Literal["min", "mean"] = "min"
    focus_q: float = 0.1  # top fraction of map values (at least one) read by the focus measure
    # topq: mean of the top q of the min-max normalised map (the paper's score: how strong the strongest
    # evidence is, a broad plateau scores as high as a narrow peak); mass: share of the map's mass in its
    # top q positions; entropy: 1 - normalised entropy of the map (1 = one position, 0 = flat)
    focus_measure: Literal["topq", "mass", "entropy"] = "topq"
    # input: the map is linearly upsampled to the input length before scoring, as Grad-CAM maps are
    # usually read; layer: scored at the layer's own resolution (published; few positions at the last
    # stage: the top-q mean then degenerates to 1 for any non-constant map)
    focus_resolution: Literal["input", "layer"] = "input"
    focus_filter: Literal["rank", "threshold"] = "rank"  # rank: keep the phi share with the highest (1 - p) * reliability; threshold: an absolute cut (see reliability)
    focus_threshold: float = 0.5  # used when focus_filter=threshold
    # what the ERTS filter reads as a candidate's reliability (docs/selection.md, "What the filter drops"):
    # focus = the paper's, a high focus_measure value is trusted: rank keeps the phi share with the highest
    # (1 - p) * focus, threshold keeps focus >= focus_threshold; diffuse = concentration read the other way
    # round, a map locked onto one spot is suspicious (needs focus_measure=mass or entropy): rank keeps the
    # highest (1 - p) * (1 - focus), threshold drops focus >= focus_threshold; loss = no Grad-CAM: rank keeps
    # the phi share with the lowest loss, threshold drops the candidates whose loss is above the
    # loss_quantile quantile of the pool's losses
    reliability: Literal["focus", "diffuse", "loss"] = "focus"
    loss_quantile: float = 0.9  # reliability=loss, focus_filter=threshold: candidates above this quantile of the pool's losses are dropped
    gradcam_layer: str = "last"  # "last", "published" or a module name of the backbone (e.g. layer3)
    # published: plain DBPD rescues a class its rule wiped out of a pool (only when it kept someone), the
    # focus filter rescues among the hard candidates, SMRD/SRD never; always: every rule and the filter,
    # even in a pool where the rule kept nothing (erts <= 0.1); off: never
    class_rescue: Literal["published", "always", "off"] = "published"
    smrd_schedule: Optional[str] = None  # smrd/erts-smrd: replay this run's per-batch counts of the rule's kept samples
    # where p, loss, EL2N and focus come from: pass = a scoring forward over the pool (the paper's rules,
    # loss-topk, el2n); update = each updated sample's own training forward, kept in a per-sample score
    # bank (no extra pass); auto = update for infobatch, pass for the others
    score_source: Literal["auto", "pass", "update"] = "auto"
    # none: every kept sample weighs 1 (published). prior: the kept samples of each class are weighted so
    # that each class weighs in the update loss as it does in the pool (k_c kept of n_c: weight
    # (n_c / n) / (k_c / k)); the hard set of a selection epoch is mostly minority classes, and
    # training on it unweighted shifts the classifier's prior towards them (docs/selection.md)
    kept_weighting: Literal["none", "prior"] = "none"
    # PDD rules (dbpd, smrd, srd and their erts- forms; the other rules ignore it): each sample the rule drops
    # is still kept with this probability, its loss weighted by 1 / easy_keep (InfoBatch's unbiased rescaling
    # with the rule's own hard/easy split); 0 = published
    easy_keep: float = 0.0
    rescore_every: int = 0  # > 0: a scoring pass over the pool every k select epochs (refreshes the bank)
    infobatch_r: float = 0.5  # InfoBatch: prune this share of the below-mean-loss samples (exactly int((1-r) n) of n kept, at random), rescale the kept ones by 1/(1-r)
    infobatch_delta: float = 0.875  # InfoBatch: prune while epoch + 1 <= delta x epochs (the official sampler's boundary); full data after
    topk_beta: float = 1.0  # loss-topk: keep probability = (percentile of the loss among recent losses) ^ beta
    topk_history: int = 1024  # loss-topk: how many recent losses the percentile is taken over (the official max_history_len)
    el2n_keep: float = 0.5  # el2n: keep this fraction of each pool, the highest EL2N scores
    # rho-loss (RHO-LOSS, Mindermann et al. 2022): keep this fraction of each pool, the highest reducible loss
    # (training loss - irreducible loss); the paper keeps 10 % of a large batch (batch_size=320 rho_keep=0.1)
    rho_keep: float = 0.1
    # rho-loss: epochs each of the two irreducible-loss models trains on its half of the training split (each
    # record's irreducible loss comes from the model trained on the other half; computed once, before epoch 0)
    rho_il_epochs: int = 4
    rho_il_model: Optional[str] = None  # rho-loss: the irreducible-loss model's architecture; None = the run's own model
    # rho-loss: which epoch's weights of an IL model score: best = the lowest validation loss (the official code's
    # checkpoint, OATML/RHO-Loss: ModelCheckpoint on val_loss_epoch), last = its last epoch
    rho_il_checkpoint: Literal["best", "last"] = "best"
    score_mode: Literal["eval", "train"] = "eval"  # train reproduces the published BN/dropout pitfall
    # samples per scoring / Grad-CAM / evaluation forward; 0 = auto: 512 on GPU, and on CPU about 64k
    # time steps per 1-D batch (16 records of 32 x 1,000 for 2-D): small batches stay in cache (measured)
    score_batch_size: int = 0


@dataclass
class TrainConfig:
    name: Optional[str] = None  # run folder name under out_dir; default: <dataset>-<model>-<method>-s<seed>
    out_dir: str = "runs"  # folder that holds the run folders
    seed: int = 0  # model init, shuffling, random rules, dropout
    epochs: int = 12  # training epochs (the schedule's phases are proportions of it)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast (CPU and CUDA)
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    quiet: bool = False  # no progress bars
    preset: Optional[str] = None  # a named experiment preset (`erts presets`), applied before the other settings


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def run_name(self) -> str:
        if self.train.name:
            return self.train.name
        return f"{self.data.dataset}-{self.model.model}-{self.selection.method}-s{self.train.seed}"


SECTIONS = [f.name for f in dataclasses.fields(Config)]


def _leaf_index() -> dict[str, str]:
    """Maps every leaf name to its section, checking that flat names are unambiguous."""
    index: dict[str, str] = {}
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):
            if f.name in index:
                raise AssertionError(f"config leaf {f.name!r} in both {index[f.name]} and {section.name}")
            index[f.name] = section.name
    return index


LEAVES = _leaf_index()


def _resolve_key(key: str) -> tuple[str, str]:
    if "." in key:
        section, leaf = key.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r} in {key!r}; sections: {', '.join(SECTIONS)}")
        if LEAVES.get(leaf) != section:
            names = sorted(k for k, s in LEAVES.items() if s == section)
            raise ConfigError(f"unknown key {key!r}; {section} accepts: {', '.join(names)}")
        return section, leaf
    if key not in LEAVES:
        raise ConfigError(f"unknown config key {key!r}; accepted keys: {', '.join(sorted(LEAVES))}")
    return LEAVES[key], key


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Converts ``value`` to type ``tp`` or raises ConfigError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError:
                pass
        raise ConfigError(f"{key}={value!r} is not {_describe(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ConfigError(f"{key}={value!r} is not accepted; expected {_describe(tp)}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} is not a list")
        return [_coerce(key, v, inner) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}={value!r} is not a bool (true/false)")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is not an int")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} is not an int")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is not a float")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} is not a float") from None
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}={value!r} is not a string")
    raise AssertionError(f"unsupported config type {tp} for {key}")


def _field_types(section: str) -> dict[str, Any]:
    cls = type(getattr(Config(), section))
    return typing.get_type_hints(cls)


# values that older configs wrote and still mean the same
_LEGACY_VALUES = {"standardize": {True: "record", False: "none", "true": "record", "false": "none"}}


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Sets one key (flat or dotted), with type conversion and validation."""
    section, leaf = _resolve_key(key)
    tp = _field_types(section)[leaf]
    legacy = _LEGACY_VALUES.get(leaf, {})
    if isinstance(value, (bool, str)) and (value.lower() if isinstance(value, str) else value) in legacy:
        value = legacy[value.lower() if isinstance(value, str) else value]
    setattr(getattr(cfg, section), leaf, _coerce(f"{section}.{leaf}", value, tp))


def apply_dict(cfg: Config, values: dict[str, Any]) -> None:
    """Applies a (nested or flat) mapping, e.g. a loaded YAML file."""
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, dict):
            for leaf, v in value.items():
                set_value(cfg, f"{key}.{leaf}", v)
        else:
            set_value(cfg, key, value)


def parse_overrides(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in args:
        if "=" not in a:
            raise ConfigError(f"expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        out[k.strip()] = v
    return out


def validate(cfg: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    s, o, t, d = cfg.selection, cfg.optim, cfg.train, cfg.data
    if s.method not in METHODS:
        raise ConfigError(f"method={s.method!r} is not accepted; expected one of {', '.join(METHODS)}")
    check_dataset(d.dataset)
    checks = [
        (0.0 <= s.tau <= 1.0, f"tau={s.tau} must be in [0, 1]"),
        (0.0 < s.gamma <= 1.0, f"gamma={s.gamma} must be in (0, 1]"),
        (0.0 < s.phi <= 1.0, f"phi={s.phi} must be in (0, 1]"),
        (0.0 < s.focus_q <= 1.0, f"focus_q={s.focus_q} must be in (0, 1]"),
        (all(v is None or v >= 0 for v in (s.warmup_epochs, s.gradcam_start, s.revision_epoch)),
         "warmup_epochs, gradcam_start and revision_epoch must be >= 0"),
        (s.smrd_schedule is None or s.method in ("smrd", "erts-smrd"),
         f"smrd_schedule is for method=smrd or erts-smrd, not {s.method}"),
        (0.0 <= s.infobatch_r <= 0.9, f"infobatch_r={s.infobatch_r} must be in [0, 0.9] (the official code keeps at least 10 %)"),
        (s.budget is None or 0.0 < s.budget <= 1.0, f"budget={s.budget} must be in (0, 1]"),
        (s.budget is None or s.method in ("full", "random", "erts-random"),
         f"budget is for method=full or random (the equal-budget controls), not {s.method}"),
        (0.0 < s.random_fraction <= 1.0, f"random_fraction={s.random_fraction} must be in (0, 1]"),
        (0.0 <= s.easy_keep < 1.0, f"easy_keep={s.easy_keep} must be in [0, 1)"),
        (0.0 < s.infobatch_delta <= 1.0, f"infobatch_delta={s.infobatch_delta} must be in (0, 1]"),
        (s.topk_beta > 0 and s.topk_history >= 1, "topk_beta must be > 0 and topk_history >= 1"),
        (0.0 < s.el2n_keep <= 1.0, f"el2n_keep={s.el2n_keep} must be in (0, 1]"),
        (0.0 < s.rho_keep <= 1.0, f"rho_keep={s.rho_keep} must be in (0, 1]"),
        (s.rho_il_epochs >= 1, f"rho_il_epochs={s.rho_il_epochs} must be >= 1"),
        (0.0 < s.loss_quantile < 1.0, f"loss_quantile={s.loss_quantile} must be in (0, 1)"),
        (s.reliability != "diffuse" or s.focus_measure in ("mass", "entropy"),
         f"reliability=diffuse reads how concentrated a map is, which focus_measure={s.focus_measure} does not "
         "measure (it says how strong the strongest evidence is); set focus_measure=mass (measured on CinC "
         "2017, issue 24) or entropy"),
        (0.0 < d.label_noise_rate < 1.0, f"label_noise_rate={d.label_noise_rate} must be in (0, 1)"),
        (d.label_noise != "pair" or (d.label_noise_classes is not None and len(d.label_noise_classes) == 2
                                     and d.label_noise_classes[0] != d.label_noise_classes[1]),
         f"label_noise=pair needs label_noise_classes=[A, B], two different class names "
         f"(got {d.label_noise_classes})"),
        (d.label_noise == "none" or not d.multilabel, "label_noise is for single-label datasets"),
        (d.exclude_top is None or d.exclude_top >= 1, f"exclude_top={d.exclude_top} must be at least 1"),
        (d.exclude_top is None or d.exclude_records, "exclude_top needs exclude_records=<a CSV with record_id>"),
        (s.rescore_every >= 0, f"rescore_every={s.rescore_every} must be >= 0 (0: the source's default)"),
        (t.epochs >= 1, f"epochs={t.epochs} must be >= 1"),
        (o.batch_size >= 1, f"batch_size={o.batch_size} must be >= 1"),
        (s.score_batch_size >= 0, f"score_batch_size={s.score_batch_size} must be >= 0 (0 = auto)"),
        (o.lr > 0, f"lr={o.lr} must be > 0"),
        (0.0 <= d.corrupt_frac < 1.0, f"corrupt_frac={d.corrupt_frac} must be in [0, 1)"),
        (d.bandpass is None or len(d.bandpass) == 2, f"bandpass={d.bandpass} must be [low_hz, high_hz]"),
        (d.crop_s is None or d.crop_s > 0, f"crop_s={d.crop_s} must be > 0"),
        (d.eval_windows == "center" or d.crop_s, "eval_windows=sliding needs crop_s (the window length)"),
        (d.eval_stride_s is None or d.eval_stride_s > 0, f"eval_stride_s={d.eval_stride_s} must be > 0"),
        (d.fs is None or d.fs > 0, f"fs={d.fs} must be > 0 (Hz), or null to keep the native rate"),
        (d.length_s is None or d.length_s > 0, f"length_s={d.length_s} must be > 0 (seconds), or null"),
        (d.crop_s is None or d.length_s is None or d.crop_s <= d.length_s,
         f"crop_s={d.crop_s} is longer than the records (length_s={d.length_s}); set crop_s <= length_s"),
        (d.bandpass is None or len(d.bandpass) != 2 or 0 < d.bandpass[0] < d.bandpass[1],
         f"bandpass={d.bandpass}: low_hz must be > 0 and below high_hz"),
        (t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"),
         f"device={t.device!r} is not accepted; expected auto, cpu, cuda or cuda:N"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    problem = schedule_problem(schedule_of(cfg))
    if problem:
        raise ConfigError(problem)
    if s.budget is not None and s.method != "full":
        fraction_for_budget(schedule_of(cfg), s.budget)  # raises when the schedule alone spends more
    if s.granularity == "auto":
        s.granularity = auto_granularity(s)
    rule = s.method.removeprefix("erts-")
    if s.update_batches == "auto":
        s.update_batches = "full" if rule in ("loss-topk", "rho-loss") else "kept"
    if s.update_batches == "full" and (rule == "infobatch" or (rule in PDD_RULES and s.easy_keep > 0)):
        raise ConfigError(f"update_batches=full cannot queue {s.method}'s importance-weighted samples (their loss "
                          f"is divided by their own pool's size); use update_batches=kept, or "
                          f"granularity=epoch for full batches")


def auto_granularity(s: SelectionConfig) -> str:
    """granularity=auto: the whole epoch for the rules whose published form draws an epoch's subset
    (InfoBatch's sampler, RS2) and for full with a budget; each mini-batch for the others."""
    per_epoch = s.method.removeprefix("erts-") in ("infobatch", "random") or (s.method == "full" and s.budget)
    return "epoch" if per_epoch else "batch"


def fraction_for_budget(schedule: Schedule, budget: float) -> float:
    """random with a budget: the per-select-epoch fraction f at which the run's effective epochs are
    budget x epochs (warm-up and revision epochs train on everything, select epochs on f)."""
    full_epochs = schedule.warmup + (schedule.epochs - schedule.revision)
    selecting = schedule.revision - schedule.warmup
    f = (budget * schedule.epochs - full_epochs) / selecting
    if not 0 < f <= 1:
        raise ConfigError(f"budget={budget} cannot be met by method={schedule.method}: its warm-up and revision "
                          f"epochs alone train {full_epochs} of {schedule.epochs} epochs on everything "
                          f"({full_epochs / schedule.epochs:.3f}); set warmup_epochs= and revision_epoch= "
                          f"(e.g. warmup_epochs=0 revision_epoch={schedule.epochs}) or a larger budget")
    return f


def schedule_of(cfg: Config) -> Schedule:
    """The run's resolved phase boundaries (unset ones from the published proportions)."""
    s = cfg.selection
    return resolve_schedule(s.method, trained_epochs(cfg), s.warmup_epochs, s.gradcam_start, s.revision_epoch,
                            s.infobatch_delta)


def trained_epochs(cfg: Config) -> int:
    """Epochs the run trains: ``epochs``, or for full with a budget ceil(budget x epochs)."""
    return budget_epochs(cfg.train.epochs, cfg.selection.budget if cfg.selection.method == "full" else None)[0]


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Builds a Config: defaults < preset < YAML file < overrides, then validates it."""
    cfg = Config()
    layers: list[dict[str, Any]] = []
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys")
        layers.append(loaded)
    if overrides:
        layers.append(parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides))
    preset = None
    for layer in layers:
        preset = layer.get("preset", (layer.get("train") or {}).get("preset") if isinstance(layer.get("train"), dict) else None) or preset
    if preset:
        from erts.presets import get_preset

        apply_dict(cfg, get_preset(preset))
    for layer in layers:
        apply_dict(cfg, layer)
    validate(cfg)
    return cfg


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuilds a Config saved with ``to_dict`` (used on resume)."""
    selection = values.get("selection")
    if isinstance(selection, dict) and "update_batches" not in selection:
        # saved before erts had the key: its per-batch steps trained on each pool's kept samples, and a
        # resumed run goes on as it began
        values = {**values, "selection": {**selection, "update_batches": "kept"}}
    cfg = Config()
    apply_dict(cfg, values)
    validate(cfg)
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


# --- what each key means (`erts train --keys`) ------------------------------------------

def field_docs(source: str | None = None) -> dict[str, str]:
    """Each leaf key's documentation: the comment block right above its field in this file (no blank
    line between) and the comment at the end of its line, in that order. The comments next to the
    fields are the single source of truth; read with ast and tokenize, never imported twice."""
    import ast
    import io
    import tokenize

    source = source if source is not None else Path(__file__).read_text(encoding="utf-8")
    comments: dict[int, str] = {}  # line -> comment text
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    sections = {type(getattr(Config(), name)).__name__ for name in SECTIONS}
    docs: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.ClassDef) and node.name in sections):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, line = [], stmt.lineno - 1
            while line in comments and line not in code_lines:  # a comment-only line
                above.insert(0, comments[line])
                line -= 1
            text = " ".join(above)
            if stmt.end_lineno in comments:  # the field's own comment, after the block's (a group's header)
                own = comments[stmt.end_lineno]
                text = f"{text}{'' if not text or text[-1] in '.:;)' else ':'} {own}".strip()
            docs[stmt.target.id] = text
    return docs


def allowed_values(key: str) -> str:
    """The values a leaf key accepts, in words (types, Literal choices, the method and dataset names);
    torch-free: model names are read from erts.models' source, not imported."""
    section = LEAVES[key]
    tp = _field_types(section)[key]
    if key == "method":
        return "one of " + ", ".join(METHODS)
    if key == "dataset":
        return "one of " + ", ".join(DATASETS)
    if key in ("model", "rho_il_model"):
        names = _model_names()
        if names:
            return ("null or " if key == "rho_il_model" else "") + "one of " + ", ".join(names)
    if key == "preset":
        from erts.presets import PRESETS

        return f"null or a preset name ({len(PRESETS)}: `erts presets` lists them)"
    return _describe(tp).replace("NoneType", "null")


def _model_names() -> list[str]:
    """The keys of erts.models' model table, read from its source (importing it would import torch)."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec("erts.models")
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (ImportError, AttributeError, TypeError, OSError, SyntaxError):
        return []
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id == "_MODELS" and isinstance(node.value, ast.Dict):
            return [k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return []
