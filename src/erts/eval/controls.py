"""Equal-budget controls: ``full`` trained for a method's own effective epochs (its schedule
compressed) and a fresh ``random`` subset each epoch at them, named after the method they control
for and paired with it seed by seed.

Why: a method that spends 64 % of full's compute is worth using only if it beats the simple ways
of spending the same 64 % (docs/selection.md); full at 30 epochs is not that comparison.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from erts.eval.stats import _matches, erts_comparisons, holm, paired_against, paired_comparisons

CONTROL_METHODS = ("full", "random")
CHEAPEST = "cheapest"  # full@cheapest: a control at the cheapest method's budget of its seed (at_the_cheapest)
FAMILIES = ("against full", "against the equal-budget controls", "ERTS against its rule")


def is_control(method: str) -> bool:
    """A labelled equal-budget control: 'full@dbpd', 'random@erts-infobatch'."""
    return "@" in str(method)


def budget_share(row) -> float | np.ndarray:
    """A run's share of a full run's compute, the budget its equal-budget controls get: effective epochs
    / the schedule's epochs (``reference_epochs``; older results: ``epochs``), with rho-loss's irreducible-loss models charged as more effective epochs (their sample
    backwards, ``backwards_irreducible``, in units of the run's own, ``backwards_update`` = EE x N).
    ``row``: a results row (dict) or a results table (then one share per row)."""
    def col(name: str) -> np.ndarray:
        v = row.get(name, 0.0)
        return np.nan_to_num(np.asarray(v, dtype=float))

    ee, bi, bu = np.asarray(row["effective_epochs"], dtype=float), col("backwards_irreducible"), col("backwards_update")
    epochs = np.asarray(row["epochs"], dtype=float)  # a budgeted full run trains fewer: its reference is the schedule's
    reference = np.asarray(row.get("reference_epochs", np.nan), dtype=float)
    share = ee * (1 + np.where(bu > 0, bi / np.maximum(bu, 1e-12), 0.0)) / np.where(reference > 0, reference, epochs)
    return float(share) if share.ndim == 0 else share


def label_controls(df: pd.DataFrame, tolerance: float = 6e-3, seed_key: str = "seed") -> pd.DataFrame:
    """Names each equal-budget control run after the method it matches: a ``full`` or ``random`` run
    with a ``budget`` becomes ``full@<m>`` / ``random@<m>`` where ``m`` is a method of the same seed
    (and dataset and model) whose ``budget_share`` (effective epochs / epochs) equals that budget (within
    ``tolerance``: budgets are given to 2 decimals; one control may match several methods of
    about equal cost: it is then repeated for each; of two controls of one kind that match one method
    in one seed, the one nearer its share counts). Controls matching nothing keep the name
    ``<method>@<budget>``. Controls run at the cheapest method's budget only are named
    ``full@cheapest`` / ``random@cheapest`` instead (``at_the_cheapest``). Other rows unchanged."""
    if "budget" not in df.columns:
        return df
    budget = pd.to_numeric(df["budget"], errors="coerce")
    ctrl = df["method"].isin(CONTROL_METHODS) & budget.notna()
    if not ctrl.any():
        return df
    same = [k for k in ("dataset", "model", seed_key) if k in df.columns]
    methods = df[~ctrl & ~df["method"].isin(CONTROL_METHODS)]
    share = pd.Series(budget_share(methods), index=methods.index)
    labelled = []
    for i, r in df[ctrl].iterrows():
        gap = (share - float(budget[i])).abs()
        match = methods[gap <= tolerance]
        for k in same:
            match = match[_matches(match[k], r[k])]
        if match.empty:
            labelled.append({**r.to_dict(), "method": f"{r['method']}@{float(budget[i]):g}", "_gap": 0.0})
        labelled += [{**r.to_dict(), "method": f"{r['method']}@{m}", "_gap": float(gap[j])}
                     for j, m in match["method"].items()]
    ctrl_rows = pd.DataFrame(labelled).sort_values("_gap", kind="stable")
    ctrl_rows = ctrl_rows.drop_duplicates(["method", *same]).sort_index().drop(columns="_gap")
    if at_the_cheapest(df[ctrl], budget[ctrl], methods, share, same, tolerance):
        ctrl_rows = df[ctrl].assign(method=df.loc[ctrl, "method"] + "@" + CHEAPEST)
    return pd.concat([df[~ctrl], ctrl_rows], ignore_index=True)


def at_the_cheapest(controls: pd.DataFrame, budget: pd.Series, methods: pd.DataFrame, share: pd.Series,
                    same: list[str], tolerance: float) -> bool:
    """The controls were run at one budget per seed, a method's, while other methods cost more
    (``--controls cheapest``: the cheapest method's budget). Which method is cheapest may change from
    seed to seed; the controls are then one configuration, ``full@cheapest``, that costs no more than
    the methods it is compared with. Controls at each method's own budget (several budgets per seed,
    or methods all of one cost) keep their methods' names."""
    dearer = False
    for key, g in controls.groupby(same, dropna=False) if same else [((), controls)]:
        if g.groupby("method").size().max() > 1 or budget[g.index].nunique() > 1:
            return False
        mine = methods
        for k, v in zip(same, key if isinstance(key, tuple) else (key,)):
            mine = mine[_matches(mine[k], v)]
        gap = share[mine.index] - float(budget[g.index].iloc[0])
        if not (gap.abs() <= tolerance).any():
            return False
        dearer = dearer or bool((gap > tolerance).any())
    return dearer


def equal_budget_comparisons(df: pd.DataFrame, keys: Sequence[str], metric: str = "test_macro_f1",
                             method_key: str = "method", seed_key: str = "seed",
                             confidence: float = 0.95) -> pd.DataFrame:
    """Every method against ``full`` and ``random`` trained at the method's own effective epochs
    (``label_controls``), paired by seed; ``p_holm`` is Holm over this family (both controls of
    every method). A method that does not beat them spends its compute no better than training
    less, or on a random subset. Controls at the cheapest method's budget only (``at_the_cheapest``)
    are every method's partners, ``full@cheapest`` and ``random@cheapest``."""
    labelled = label_controls(df, seed_key=seed_key)
    keys = [k for k in keys if k != "budget"]
    cheapest = labelled[method_key].astype(str).str.endswith("@" + CHEAPEST).any()
    if cheapest:  # a method cheaper than the controls (e.g. a variant run beside the grid) has none
        labelled = labelled[~_cheaper_than_the_controls(labelled, method_key, seed_key)]
    parts = [paired_against(labelled, keys, lambda m, c=c: None if is_control(m) or m in CONTROL_METHODS
                            else f"{c}@{CHEAPEST if cheapest else m}", metric, method_key, seed_key, confidence)
             for c in CONTROL_METHODS]
    out = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) \
        else pd.DataFrame()
    if not out.empty:
        out["p_holm"] = holm(out["p_ttest"].to_numpy())
    return out


def compared_at_the_cheapest(comparisons: pd.DataFrame) -> bool:
    """An equal_budget_comparisons table against controls at the cheapest method's budget (full@cheapest)."""
    return not comparisons.empty and bool(comparisons["baseline"].astype(str).str.endswith("@" + CHEAPEST).any())


def _cheaper_than_the_controls(labelled: pd.DataFrame, method_key: str, seed_key: str,
                               tolerance: float = 6e-3) -> pd.Series:
    """Rows of methods whose share is below their seed's control budget (full@cheapest)."""
    same = [k for k in ("dataset", "model", seed_key) if k in labelled.columns]
    ctrl = labelled[method_key].map(is_control)
    runs = labelled[~ctrl & ~labelled[method_key].isin(CONTROL_METHODS)]
    control_budget = {tuple(r[same]): float(r["budget"]) for _, r in labelled[ctrl].iterrows()}
    b = pd.Series([control_budget.get(tuple(r), np.nan) for r in runs[same].itertuples(index=False)],
                  index=runs.index)
    below = pd.Series(budget_share(runs), index=runs.index) < b - tolerance
    return below.reindex(labelled.index, fill_value=False)


def comparison_families(results: pd.DataFrame, keys: Sequence[str], metric: str = "test_macro_f1"
                        ) -> dict[str, pd.DataFrame]:
    """The three Holm families a sweep's summary compares in (``FAMILIES``): every method against
    ``full``, against its equal-budget controls, and each ERTS-X against X, each paired by seed.
    ``results``: controls as run (``full``/``random`` with a ``budget``), not yet labelled; ``keys``:
    the configuration keys (``budget`` among them or not). Computed once, read by the t-tests and by
    the record-paired bootstrap (erts.eval.paired) alike."""
    labelled = label_controls(results)
    keys = [k for k in keys if k != "budget"]
    return {FAMILIES[0]: paired_comparisons(labelled[~labelled["method"].map(is_control)], keys, metric),
            FAMILIES[1]: equal_budget_comparisons(results, keys, metric),
            FAMILIES[2]: erts_comparisons(labelled, keys, metric)}
