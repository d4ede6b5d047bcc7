"""Ablation statistics on constructed data: a known shift is found with the right CI, two pairs give
no p-value, Holm matches a hand computation, collapsed pairs are left out and counted."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.ablation_stats import MIN_PAIRS, bootstrap_ci, compare, holm, verdict, wilcoxon_p


def cells(shift: float, folds: int, seeds: int, rng: np.random.Generator, collapsed: set = frozenset()):
    rows = []
    for f in range(folds):
        for s in range(seeds):
            base = 0.3 + 0.05 * rng.standard_normal()
            rows.append(dict(task="binary-24h", model="cnn", strategy="none", n_synthetic=0, fold=f"f{f}",
                             seed=s, tss=base, collapsed=(f, s) in collapsed))
            rows.append(dict(task="binary-24h", model="cnn", strategy="synthetic", n_synthetic=100,
                             fold=f"f{f}", seed=s, tss=base + shift + 0.01 * rng.standard_normal(),
                             collapsed=False))
    return pd.DataFrame(rows)


def test_a_known_shift_is_found_with_a_ci_around_it():
    (c,) = compare(cells(0.10, 3, 5, np.random.default_rng(0)), ["tss"])
    assert c.n_pairs == 15 and c.mean_diff == pytest.approx(0.10, abs=0.01)
    assert c.ci95[0] < 0.10 < c.ci95[1] and c.ci95[0] > 0.08 and c.ci95[1] < 0.12
    assert c.p_value < 0.001 and c.significant
    assert "helps" in verdict(c)


def test_no_shift_is_no_detectable_effect():
    (c,) = compare(cells(0.0, 3, 5, np.random.default_rng(1)), ["tss"])
    assert c.ci95[0] < 0 < c.ci95[1] and not c.significant
    assert "no detectable effect" in verdict(c)


def test_two_pairs_give_no_p_value():
    (c,) = compare(cells(0.2, 1, 2, np.random.default_rng(2)), ["tss"])
    assert c.n_pairs == 2 and c.p_value is None and c.p_holm is None and not c.significant
    assert "no p-value (2 pairs < 5)" in verdict(c)
    assert wilcoxon_p(np.ones(MIN_PAIRS - 1)) is None and wilcoxon_p(np.ones(MIN_PAIRS)) is not None


def test_holm_matches_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted: 0.01 x4 = 0.04; 0.03 x3 = 0.09; 0.04 x2 = 0.08 -> max(0.09, 0.08) = 0.09; 0.20 x1 = 0.20
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_collapsed_pairs_are_left_out_and_counted():
    table = cells(0.1, 3, 5, np.random.default_rng(3), collapsed={(0, 0), (1, 2)})
    (c,) = compare(table, ["tss"])
    assert c.n_pairs == 13 and c.collapsed_pairs == 2
    assert "2 collapsed pairs left out" in verdict(c)


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci(np.array([0.1])) is None
    assert bootstrap_ci(np.array([0.2, 0.2, 0.2])) == (0.2, 0.2)


def test_holm_runs_across_metrics_and_strategies():
    table = cells(0.10, 3, 5, np.random.default_rng(4))
    table["hss"] = table["tss"] * 0.5
    comparisons = compare(table, ["tss", "hss"])
    assert len(comparisons) == 2
    raw = [c.p_value for c in comparisons]
    assert [c.p_holm for c in comparisons] == pytest.approx(holm(raw))


def test_identically_zero_comparisons_are_reported_but_not_tested():
    """A metric equal in every pair (e.g. acc_X where no fold has an X) gets no p-value and stays
    out of the Holm family, so it does not dilute the other comparisons."""
    from experiments.ablation_stats import identically_zero
    rows = []
    rng = np.random.default_rng(0)
    for fold in ("f1", "f2", "f3"):
        for seed in (0, 1):
            for strategy in ("none", "synthetic"):
                rows.append({"task": "t", "model": "m", "strategy": strategy, "n_synthetic": 0 if strategy == "none" else 10,
                             "fold": fold, "seed": seed, "collapsed": False,
                             "tss": rng.normal() + (0.8 if strategy == "synthetic" else 0.0), "acc_X": 0.0})
    out = {c.metric: c for c in compare(pd.DataFrame(rows), ["tss", "acc_X"])}
    assert out["acc_X"].p_value is None and out["acc_X"].p_holm is None and identically_zero(out["acc_X"])
    assert out["tss"].p_holm == pytest.approx(out["tss"].p_value)       # a family of one
    assert "identically zero" in verdict(out["acc_X"])
    assert wilcoxon_p(np.zeros(MIN_PAIRS)) is None
