"""Paired statistics of an augmentation ablation: does a strategy beat `none`?

The unit is a (fold, seed) pair: for each strategy (at each N of synthetic images), a cell is
paired with the `none` cell of the same task, model, fold and seed, and the difference of a score
(TSS, HSS, BSS ...) is one observation. Per comparison:

- the mean paired difference with a bootstrap 95 % confidence interval (scipy.stats.bootstrap,
  BCa, a fixed seed);
- a Wilcoxon signed-rank p-value only from at least MIN_PAIRS pairs (none from fewer);
- Holm's step-down adjustment across the whole family of comparisons that have a p-value;
- "significant" only after adjustment;
- pairs where either cell is collapsed (one predicted class) are left out and counted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from solargen.errors import SolargenError

MIN_PAIRS = 5
KEYS = ("task", "model", "fold", "seed")


@dataclass
class Comparison:
    task: str
    model: str
    strategy: str
    n_synthetic: int
    metric: str
    n_pairs: int
    collapsed_pairs: int
    mean_diff: float
    ci95: tuple[float, float] | None
    p_value: float | None
    p_holm: float | None = None
    significant: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(diffs: np.ndarray, seed: int = 0, resamples: int = 9999) -> tuple[float, float] | None:
    """BCa 95 % interval of the mean of paired differences (None below 2 pairs or when all equal)."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < 2:
        return None
    if np.ptp(diffs) == 0:
        return (float(diffs[0]), float(diffs[0]))
    result = stats.bootstrap((diffs,), np.mean, confidence_level=0.95, n_resamples=resamples,
                             method="BCa", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def wilcoxon_p(diffs: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value, only from MIN_PAIRS pairs or more; None as well for
    differences that are identically zero over all pairs (nothing to test: such a comparison is
    reported, and left out of the Holm family)."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < MIN_PAIRS or np.all(diffs == 0):
        return None
    return float(stats.wilcoxon(diffs, zero_method="wilcox").pvalue)


def identically_zero(comparison: "Comparison") -> bool:
    """Enough pairs for a test, every paired difference exactly zero."""
    c = comparison
    return c.n_pairs >= MIN_PAIRS and c.p_value is None and c.ci95 is not None and c.ci95 == (0.0, 0.0)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (scipy has Benjamini-Hochberg only, and statsmodels
    would be a heavy dependency for six lines)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted.tolist()


def compare(cells: pd.DataFrame, metrics: list[str], baseline: str = "none", seed: int = 0,
            alpha: float = 0.05) -> list[Comparison]:
    """Every strategy (at each N) against `baseline` for every metric, paired by (task, model,
    fold, seed); Holm's adjustment runs across the whole family (all strategies, N and metrics).

    `cells`: one row per (task, model, strategy, n_synthetic, fold, seed) with a bool `collapsed`
    and the metrics (repeated synthetic sets averaged into their unit beforehand)."""
    missing = [c for c in (*KEYS, "strategy", "n_synthetic", "collapsed", *metrics) if c not in cells]
    if missing:
        raise SolargenError(f"ablation statistics: the cell table lacks columns {missing}")
    base = cells[cells["strategy"] == baseline].set_index(list(KEYS))
    if base.index.has_duplicates:
        raise SolargenError(f"ablation statistics: more than one '{baseline}' cell per (task, model, fold, seed)")
    out = []
    others = cells[cells["strategy"] != baseline]
    for metric in metrics:
        for (task, model, strategy, n), group in others.groupby(["task", "model", "strategy", "n_synthetic"],
                                                                 sort=True):
            paired = group.join(base[[metric, "collapsed"]], on=list(KEYS), rsuffix="_base", how="inner")
            collapsed = paired["collapsed"].astype(bool) | paired["collapsed_base"].astype(bool)
            usable = paired[~collapsed]
            diffs = (usable[metric] - usable[f"{metric}_base"]).to_numpy(dtype=float)
            diffs = diffs[np.isfinite(diffs)]
            out.append(Comparison(task, model, strategy, int(n), metric, len(diffs), int(collapsed.sum()),
                                  float(diffs.mean()) if len(diffs) else float("nan"),
                                  bootstrap_ci(diffs, seed), wilcoxon_p(diffs)))
    tested = [c for c in out if c.p_value is not None]
    for c, adjusted in zip(tested, holm([c.p_value for c in tested])):
        c.p_holm = adjusted
        c.significant = adjusted < alpha
    return out


def units_table(results: list[dict], metrics: list[str]) -> pd.DataFrame:
    """Finished ablation cells -> one row per (task, model, strategy, N, fold, seed): the metrics
    averaged over repeated synthetic sets, collapsed when any of them collapsed. Floors left out."""
    rows = []
    for r in results:
        if r.get("floor"):
            continue
        c = r["cell"]
        rows.append({"task": c["task"], "model": c["model"], "strategy": c["strategy"],
                     "n_synthetic": c["n"], "fold": c["fold"], "seed": c["seed"],
                     "collapsed": bool(r["metrics"].get("collapsed", 0)),
                     **{m: r["metrics"].get(m, float("nan")) for m in metrics}})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    keys = ["task", "model", "strategy", "n_synthetic", "fold", "seed"]
    return table.groupby(keys, as_index=False).agg({"collapsed": "any", **{m: "mean" for m in metrics}})


def verdict(comparison: Comparison) -> str:
    """One sentence, generated from the numbers: helps / hurts / no detectable effect."""
    c = comparison
    what = f"{c.strategy} (N = {c.n_synthetic}) vs none, {c.model} on {c.task}: {c.metric.upper()}"
    if c.n_pairs == 0:
        return f"{what}: no usable pairs ({c.collapsed_pairs} collapsed)."
    ci = f"CI [{c.ci95[0]:+.3f}, {c.ci95[1]:+.3f}]" if c.ci95 else "no CI (one pair)"
    stats_text = (f"mean paired difference {c.mean_diff:+.3f}, 95 % {ci}, "
                  + (f"Holm-adjusted Wilcoxon p = {c.p_holm:.3g}" if c.p_holm is not None
                     else "no p-value (identically zero over all pairs: not tested)" if identically_zero(c)
                     else f"no p-value ({c.n_pairs} pairs < {MIN_PAIRS})")
                  + f", {c.n_pairs} (fold, seed) pairs"
                  + (f", {c.collapsed_pairs} collapsed pairs left out" if c.collapsed_pairs else ""))
    if c.significant:
        effect = "helps" if c.mean_diff > 0 else "hurts"
    else:
        effect = "no detectable effect at this scale"
    return f"{what}: {effect} ({stats_text})."
