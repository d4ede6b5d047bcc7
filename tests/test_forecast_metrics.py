"""Known answers for forecast scores and losses (metrics.md)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from forecasting import metrics
from forecasting.losses import (LOSSES, ForecastLoss, LossConfig, NonFiniteLossError,
                                class_weights)

REFERENCE_S = np.array([[0.3225, -0.2965, -0.6636, -1.0000],
                        [-0.2965, 0.4258, 0.0587, -0.2777],
                        [-0.6636, 0.0587, 3.6856, 3.3491],
                        [-1.0000, -0.2777, 3.3491, 39.4566]])


def test_binary_scores_hand_made_table():
    # rows observed (no, yes), columns forecast (no, yes): TN=50 FP=10 FN=5 TP=15
    s = metrics.binary_scores(np.array([[50, 10], [5, 15]]))
    assert s["recall"] == pytest.approx(15 / 20)
    assert s["tss"] == pytest.approx(15 / 20 - 10 / 60)
    assert s["hss"] == pytest.approx(2 * (15 * 50 - 5 * 10) / (20 * 55 + 25 * 60))
    assert s["precision"] == pytest.approx(15 / 25)
    assert s["accuracy"] == pytest.approx(65 / 80)
    perfect = metrics.binary_scores(np.array([[7, 0], [0, 3]]))
    assert perfect["tss"] == 1.0 and perfect["hss"] == 1.0


def test_multiclass_skill_reduces_to_binary():
    cm = np.array([[50, 10], [5, 15]])
    k = metrics.multiclass_skill(cm)
    b = metrics.binary_scores(cm)
    assert k["hss"] == pytest.approx(b["hss"])
    assert k["peirce"] == pytest.approx(b["tss"])


def test_gmgs_reference_matrix():
    # metrics.md prints p rounded to 4 decimals; the matrix was computed from unrounded
    # frequencies. These round to (0.5385, 0.3696, 0.0827, 0.0092) and reproduce it to 4 decimals.
    p = np.array([0.53850108, 0.36959146, 0.08267577, 0.0092317])
    assert np.allclose(np.round(p, 4), [0.5385, 0.3696, 0.0827, 0.0092])
    s = metrics.gmgs_matrix(p)
    assert np.abs(s - REFERENCE_S).max() < 5e-5
    # the public bug (a_r instead of 1/a_r for r < i) makes the diagonal constant; ours is not
    assert len(set(np.round(np.diag(s), 3))) == 4


def test_gmgs_perfect_and_constant_forecast():
    rng = np.random.default_rng(0)
    y = rng.choice(4, size=4000, p=[0.55, 0.3, 0.12, 0.03])
    clim = np.bincount(y, minlength=4) / len(y)
    assert metrics.gmgs(metrics.confusion_matrix(y, y, 4), clim) == pytest.approx(1.0)
    for k in range(4):  # a constant forecast scores exactly 0 against the sample climatology
        assert metrics.gmgs(metrics.confusion_matrix(y, np.full_like(y, k), 4), clim) == \
            pytest.approx(0.0, abs=1e-12)


def test_gmgs_equals_mean_threshold_tss():
    rng = np.random.default_rng(1)
    y = rng.choice(4, size=3000, p=[0.5, 0.3, 0.15, 0.05])
    pred = np.where(rng.random(3000) < 0.55, y, rng.integers(0, 4, 3000))
    cm = metrics.confusion_matrix(y, pred, 4)
    observed = np.bincount(y, minlength=4) / len(y)
    mean_tss = np.mean([metrics.binary_scores(metrics.threshold_table(cm, k))["tss"]
                        for k in (1, 2, 3)])
    assert metrics.gmgs(cm, observed) == pytest.approx(mean_tss, abs=1e-12)
    assert 0.2 < mean_tss < 0.9


def test_bss_and_reliability():
    event = np.array([0, 0, 1, 1], float)
    assert metrics.brier_skill(event, event, 0.25) == 1.0
    assert metrics.brier_skill(np.full(4, 0.5), event, 0.5) == pytest.approx(0.0)
    rel = metrics.reliability(np.array([0.05, 0.05, 0.95, 0.92]), event)
    assert rel["count"][0] == 2 and rel["count"][9] == 2
    assert rel["observed_frequency"][9] == 1.0 and rel["observed_frequency"][0] == 0.0


def test_score_forecasts_uses_training_climatology():
    probs = np.array([[0.7, 0.2, 0.1, 0.0], [0.1, 0.1, 0.7, 0.1], [0.2, 0.6, 0.1, 0.1]])
    y = np.array([0, 2, 1])
    train_clim = np.array([0.6, 0.3, 0.08, 0.02])
    s = metrics.score_forecasts(probs, y, train_clim, event_class=2)
    f = probs[:, 2:].sum(1)
    o = (y >= 2).astype(float)
    c = 0.1
    assert s["bss_ge_m"] == pytest.approx((c * (1 - c) - np.mean((f - o) ** 2)) / (c * (1 - c)))
    assert s["gmgs"] == pytest.approx(metrics.gmgs(np.diag([1, 1, 1, 0]), train_clim))
    assert np.isnan(s["gmgs_eval_climatology"])  # no X observed: eval-set GMGS undefined


def test_class_weights():
    assert np.allclose(class_weights([900, 100], "reference"), [0.1, 0.9])
    w = class_weights([600, 300, 90, 10], "inverse")
    assert w.sum() == pytest.approx(4) and w[3] / w[0] == pytest.approx(60)
    e = class_weights([600, 300, 90, 10], "effective", beta=0.99)
    assert e.sum() == pytest.approx(4) and e[3] > e[2] > e[1] > e[0]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("k", [2, 4])
def test_losses_finite_gradients_on_extreme_logits(name, k):
    loss = ForecastLoss(LossConfig(name=name, ib_start_epoch=0), np.array([500, 300, 50, 5][:k]), 10)
    logits = torch.tensor([[1e4] + [-1e4] * (k - 1), [-1e4] * (k - 1) + [1e4],
                           [0.0] * k, [-1e4] + [1e4] + [0.0] * (k - 2)], requires_grad=True)
    targets = torch.tensor([0, k - 1, 1, 0])
    feats = torch.randn(4, 8, requires_grad=True)
    value = loss(logits, targets, feats)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(logits.grad).all()
    if name in ("ib", "flare"):  # the influence-balanced term also differentiates the features
        assert torch.isfinite(feats.grad).all()


def test_nan_loss_raises():
    loss = ForecastLoss(LossConfig(name="wce"), np.array([90, 10]), 4)
    with pytest.raises(NonFiniteLossError):
        loss(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))


def test_focal_and_wce_reference_values():
    logits = torch.tensor([[0.0, np.log(3.0)]])        # p = (0.25, 0.75)
    target = torch.tensor([1])
    focal = ForecastLoss(LossConfig(name="focal"), np.array([90, 10]), 4)(logits, target)
    assert float(focal) == pytest.approx(0.4 * 0.25 ** 2 * -np.log(0.75), rel=1e-5)
    wce = ForecastLoss(LossConfig(name="wce"), np.array([90, 10]), 4)(logits, target)
    assert float(wce) == pytest.approx(0.9 * -np.log(0.75), rel=1e-5)


def test_ib_warm_up_is_plain_ce():
    loss = ForecastLoss(LossConfig(name="ib"), np.array([90, 10]), total_epochs=10)
    logits, target = torch.tensor([[0.3, -0.2]]), torch.tensor([1])
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert float(loss(logits, target, torch.ones(1, 3))) == pytest.approx(float(ce))
    loss.set_epoch(5)
    assert float(loss(logits, target, torch.ones(1, 3))) != pytest.approx(float(ce))
