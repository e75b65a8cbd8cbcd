"""Classification metrics, computed with scikit-learn.

Single-label: predictions are the argmax. Multi-label: one threshold per class,
tuned on the validation split (maximising that class's F1) and then applied
unchanged to the test split, so the test set is never used for selection.

Classes absent from a split. A class is *present* in a split when at least one
record of the split has it as a true label. Per-class F1 of a present class is
sklearn's (``zero_division=0``: a present class never predicted scores 0). The
F1 of an absent class is undefined (no true record, so no recall) and reported
as NaN, whether or not the model predicted it; macro-F1 averages the present
classes only, so a class that a split happens not to contain no longer counts
as F1 = 0 (sklearn's ``labels=range(K)`` convention pulls such a split's
macro-F1 down by 1/K per absent class). Wrong predictions of an absent class
still cost: they are missed records of the classes that are present. A split
with no present class has macro-F1 NaN. Dataset scores over a class subset
(CinC 2017's F1 over N, A, O) follow the same rule.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

# datasets whose official score averages F1 over a subset of classes
SCORED_SUBSETS: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {
    ("N", "A", "O", "~"): ("f1_nao", ("N", "A", "O")),  # CinC 2017 challenge score
}


def macro_auroc(y_onehot: np.ndarray, probs: np.ndarray) -> float:
    """Mean one-vs-rest AUROC over classes that have both positives and negatives."""
    aucs = [roc_auc_score(y_onehot[:, c], probs[:, c]) for c in range(y_onehot.shape[1])
            if 0 < y_onehot[:, c].sum() < len(y_onehot)]
    return float(np.mean(aucs)) if aucs else float("nan")


def present_classes(y_onehot: np.ndarray) -> np.ndarray:
    """Boolean (K,): the classes with at least one true record in the split."""
    return np.asarray(y_onehot).sum(0) > 0


def macro_over_present(per_class: np.ndarray, present: np.ndarray) -> float:
    """Mean per-class F1 over the present classes; NaN when no class is present."""
    per_class = np.asarray(per_class, dtype=float)
    return float(per_class[present].mean()) if np.any(present) else float("nan")


def tune_thresholds(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-class threshold maximising F1 (multi-label); 0.5 for a class with no positives."""
    thresholds = np.full(y.shape[1], 0.5, dtype=np.float64)  # float64: a float32 cut could exclude its own sample
    for c in range(y.shape[1]):
        if y[:, c].sum() == 0:
            continue
        candidates = np.unique(np.concatenate([probs[:, c], [0.5]]))
        pred = probs[:, c][None, :] >= candidates[:, None]  # (n_candidates, N)
        tp = (pred & (y[:, c] > 0)).sum(1)
        f1 = 2 * tp / (pred.sum(1) + y[:, c].sum())
        thresholds[c] = candidates[int(np.argmax(f1))]
    return thresholds


def compute_metrics(y: np.ndarray, probs: np.ndarray, class_names: list[str], *, multilabel: bool = False,
                    thresholds: np.ndarray | None = None) -> dict:
    """macro-F1, accuracy, macro-AUROC, per-class F1 and (single-label) the confusion matrix.

    Multi-label accuracy is the exact-match (subset) accuracy. Per-class F1 of a
    class absent from ``y`` is NaN and macro-F1 averages the present classes
    (module docstring).
    """
    k = len(class_names)
    if multilabel:
        th = np.full(k, 0.5) if thresholds is None else thresholds
        pred = (probs >= th).astype(int)
        y_onehot = y.astype(int)
        per_class = f1_score(y_onehot, pred, average=None, labels=range(k), zero_division=0)
        out = {"accuracy": float(accuracy_score(y_onehot, pred)), "thresholds": [float(t) for t in th]}
    else:
        pred = probs.argmax(1)
        y_onehot = np.eye(k, dtype=int)[y]
        per_class = f1_score(y, pred, average=None, labels=range(k), zero_division=0)
        out = {"accuracy": float(accuracy_score(y, pred)),
               "confusion": confusion_matrix(y, pred, labels=range(k)).tolist()}
    present = present_classes(y_onehot)
    per_class = np.where(present, per_class, np.nan)
    out["macro_f1"] = macro_over_present(per_class, present)
    out["macro_auroc"] = macro_auroc(y_onehot, probs)
    out["per_class_f1"] = {c: float(f) for c, f in zip(class_names, per_class)}
    subset = SCORED_SUBSETS.get(tuple(class_names))
    if subset:
        name, classes = subset
        idx = [class_names.index(c) for c in classes]
        out[name] = macro_over_present(per_class[idx], present[idx])
    return out
