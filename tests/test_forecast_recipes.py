"""Floors with known answers, validation thresholds, collapse, distillation and sequence models
over frozen frame embeddings, on small hand-made datasets."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from forecasting import metrics
from forecasting.decision import choose_thresholds, decide, event_probabilities, is_collapsed
from forecasting.evaluate import evaluate_checkpoint
from forecasting.losses import Distillation, ForecastLoss, LossConfig
from forecasting.models import build_model
from forecasting.config import CheckpointError, ForecastConfig
from forecasting.checkpoint import load_checkpoint
from forecasting.train import logit_shift, train
from solargen.data.dataset import write_dataset

FOLDS_YAML = """gap_hours: 72
folds:
  - name: f1
    train: [2012-01-01, 2012-01-20]
    val:   [2012-01-24, 2012-01-31]
    test:  [2012-02-04, 2012-02-14]
"""
FLUX = {"B": 3e-7, "C": 3e-6, "M": 3e-5, "X": 2e-4}
TINY_RESNET = {"channels": [4, 8, 8, 8], "layers": [1, 1, 1, 1], "drop_rate": 0.0}
TINY_DEIT = {"patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 2}


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """Hourly 16 x 16 frames, Jan-Feb 2012, in 2-day blocks of one GOES class (B, C, M, C, ...):
    the class within the next 24 h is the class now ('the future equals the present'), and a
    bright patch whose brightness grows with the class marks every frame of an M block."""
    root = tmp_path_factory.mktemp("recipes")
    t = pd.date_range("2012-01-01", "2012-02-14 23:00", freq="h", tz="UTC")
    letters = np.array(["BCMC"[(i // 48) % 4] for i in range(len(t))], dtype=object)
    flux = np.array([FLUX[c] for c in letters])
    rng = np.random.default_rng(0)
    frames = rng.normal(-0.5, 0.05, (len(t), 1, 16, 16))
    level = np.array([{"B": 0.0, "C": 0.3, "M": 1.2}[c] for c in letters])
    frames[:, 0, 4:10, 4:10] += level[:, None, None]
    labels = pd.DataFrame({"t_obs": t, "goes_flux": flux, "goes_class": letters,
                           "max_flux_24h": flux, "max_class_24h": letters,
                           "max_flux_72h": flux, "max_class_72h": letters,
                           "stale": np.zeros(len(t), bool)})
    meta = {"source": "test", "channels": ["171"], "size": 16,
            "normalisation": {"scaling": "linear", "lo": [0.0], "hi": [1.0]}}
    ds = write_dataset(root / "ds", np.clip(frames, -1, 1), labels, meta, "blocks\n")
    (root / "folds.yaml").write_text(FOLDS_YAML)
    return ds, root


def _config(blocks, out, **kw) -> ForecastConfig:
    ds, root = blocks
    base = dict(data=str(ds.root), out=str(out), folds=str(root / "folds.yaml"), task="binary-24h",
                epochs=2, batch_size=32, lr=3e-3, patience=5)
    return ForecastConfig(**{**base, **kw})


def _test_scores(checkpoint, blocks, tmp_path) -> dict:
    ds, _ = blocks
    return evaluate_checkpoint(checkpoint, ds.root, tmp_path / "eval", part="test",
                               heatmaps=0)["scores"]


def test_persistence_scores_tss_one_when_the_future_is_the_present(blocks, tmp_path):
    summary = train(_config(blocks, tmp_path / "p", model="persistence"))
    assert summary["decision"]["chosen_on"] == "train"
    scores = _test_scores(tmp_path / "p", blocks, tmp_path)
    assert scores["ge_m"]["tss"] == pytest.approx(1.0)
    assert not scores["collapsed"]
    four = train(_config(blocks, tmp_path / "p4", model="persistence", task="4class-24h"))
    assert len(four["decision"]["thresholds"]) == 3
    s4 = _test_scores(tmp_path / "p4", blocks, tmp_path)
    assert s4["tss_thresholds"][">=C"] == pytest.approx(1.0)
    assert s4["tss_thresholds"][">=M"] == pytest.approx(1.0)


def test_logistic_floor_separates_bright_event_frames(blocks, tmp_path):
    train(_config(blocks, tmp_path / "l", model="logistic"))
    meta, estimator = load_checkpoint(tmp_path / "l")
    assert meta["kind"] == "floor" and meta["decision"]["chosen_on"] == "val"
    scores = _test_scores(tmp_path / "l", blocks, tmp_path)
    assert scores["ge_m"]["tss"] == pytest.approx(1.0)


def test_climatology_is_a_collapsed_constant_forecast(blocks, tmp_path):
    summary = train(_config(blocks, tmp_path / "c", model="climatology"))
    scores = _test_scores(tmp_path / "c", blocks, tmp_path)
    assert scores["collapsed"] and scores["ge_m"]["tss"] == 0.0
    probs = pd.read_csv(tmp_path / "eval" / "probabilities.csv")
    assert np.allclose(probs["p_>=M"], summary["train_climatology"][1])
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["collapsed"] is True


def test_constant_predictor_is_flagged_collapsed():
    probs = np.tile([0.7, 0.3], (6, 1))
    targets = np.array([0, 0, 1, 0, 1, 0])
    scores = metrics.score_forecasts(probs, targets, np.array([0.6, 0.4]), 1)
    assert scores["collapsed"] and scores["ge_m"]["tss"] == 0.0
    varied = metrics.score_forecasts(probs, targets, np.array([0.6, 0.4]), 1, targets)
    assert not varied["collapsed"] and varied["ge_m"]["tss"] == 1.0
    assert is_collapsed(np.zeros(3)) and not is_collapsed(np.array([0, 2, 2]))


def _brute_force_tss(event: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    best = (-2.0, 0.0)
    for t in np.unique(score):
        cm = metrics.confusion_matrix(event, (score >= t).astype(int), 2)
        best = max(best, (metrics.binary_scores(cm)["tss"], t))
    return best


def test_threshold_chosen_is_the_tss_optimal_one():
    # negatives at 0.1 0.2 0.3 0.4, positives at 0.35 0.6 0.7: t = 0.35 gives TSS 1 - 1/4
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7])
    y = np.array([0, 0, 0, 1, 0, 1, 1])
    (t,) = choose_thresholds(np.stack([1 - p, p], 1), y)
    assert t == pytest.approx(0.325)               # halfway between 0.35 and the next score down
    assert _brute_force_tss(y, p) == (pytest.approx(0.75), pytest.approx(0.35))
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.random(40)
        e = (rng.random(40) < q).astype(int)
        (t,) = choose_thresholds(np.stack([1 - q, q], 1), e)
        cm = metrics.confusion_matrix(e, (q >= t).astype(int), 2)
        assert metrics.binary_scores(cm)["tss"] == pytest.approx(_brute_force_tss(e, q)[0])
    # four ordered classes: one threshold per level on P(>= k); the forecast is the highest passed
    probs = np.array([[0.7, 0.2, 0.05, 0.05], [0.1, 0.3, 0.4, 0.2], [0.0, 0.1, 0.1, 0.8]])
    assert np.allclose(event_probabilities(probs), [[0.3, 0.1, 0.05], [0.9, 0.6, 0.2],
                                                    [1.0, 0.9, 0.8]])
    assert decide(probs, [0.5, 0.5, 0.5]).tolist() == [0, 2, 3]


def test_evaluate_applies_the_saved_threshold(blocks, tmp_path):
    out = tmp_path / "r"
    train(_config(blocks, out, model="resnet", sampling="balanced", augment="flips-rotate",
                  min_epochs=2, model_overrides=TINY_RESNET))
    meta = json.loads((out / "forecast.json").read_text())
    (t,) = meta["decision"]["thresholds"]
    ds, _ = blocks
    evaluate_checkpoint(out, ds.root, tmp_path / "e1", part="test", heatmaps=0)
    table = pd.read_csv(tmp_path / "e1" / "probabilities.csv")
    assert ((table["p_>=M"] >= t) == (table["forecast"] == ">=M")).all()
    meta["decision"]["thresholds"] = [0.0]          # every sample passes: all '>= M'
    (out / "forecast.json").write_text(json.dumps(meta))
    report = evaluate_checkpoint(out, ds.root, tmp_path / "e2", part="test", heatmaps=0)
    assert report["collapsed"] and report["scores"]["ge_m"]["recall"] == 1.0
    meta.pop("format_version")                      # an old-style checkpoint is a clear error
    (out / "forecast.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="older solargen"):
        load_checkpoint(out)


def test_logit_shift_undoes_balanced_sampling():
    targets = np.array([0] * 90 + [1] * 10)
    prior = np.array([0.9, 0.1])
    balanced = np.where(targets == 1, 1 / 10, 1 / 90)
    shift = logit_shift(prior, targets, balanced, np.ones(2))
    assert shift[1] - shift[0] == pytest.approx(np.log(0.1 / 0.9))
    assert np.allclose(logit_shift(prior, targets, None, np.ones(2)), 0.0)


def test_distillation_reduces_to_cross_entropy_and_keeps_the_teacher_frozen():
    torch.manual_seed(0)
    student = build_model("deit", "cpu", 1, 16, 2, distilled=True, **TINY_DEIT).train()
    teacher = build_model("resnet", "cpu", 1, 16, 2, **TINY_RESNET)
    x, y = torch.randn(8, 1, 16, 16), torch.tensor([0, 1] * 4)
    ce = ForecastLoss(LossConfig(name="ce"), np.array([4, 4]), 1)
    to_class = lambda logits: logits.argmax(-1)                      # noqa: E731
    out = student(x)
    plain = Distillation(ce, teacher, 0.0, to_class)(out, y, x)
    assert float(plain.detach()) == pytest.approx(float(F.cross_entropy(out.logits, y).detach()))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss_fn = Distillation(ce, teacher, 0.5, to_class).train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    loss = loss_fn(student(x), y, x)
    with torch.no_grad():
        expected = 0.5 * F.cross_entropy(out.logits, y) + 0.5 * F.cross_entropy(
            out.distill_logits, teacher(x).logits.argmax(-1))
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert student.head_dist.weight.grad is not None


def test_teacher_and_encoder_chain_through_the_trainer(blocks, tmp_path):
    """A ResNet of the fold teaches a distilled DeiT and encodes frames for an S5 model over
    embeddings; a checkpoint of another fold is refused."""
    ds, root = blocks
    cnn = tmp_path / "cnn-f1"
    train(_config(blocks, cnn, model="resnet", sampling="balanced", model_overrides=TINY_RESNET))
    student = train(_config(blocks, tmp_path / "deit", model="deit", sampling="balanced",
                            teacher=str(tmp_path / "cnn-{fold}"), model_overrides=TINY_DEIT))
    assert student["teacher"]["model"] == "resnet"
    assert load_checkpoint(tmp_path / "deit")[1].config.distilled
    seq = train(_config(blocks, tmp_path / "ssm", model="ssm", history=6, task="4class-24h",
                        sampling="balanced", encoder=str(cnn),
                        model_overrides={"d_model": 16, "state_size": 8, "depth": 1}))
    assert seq["encoder"]["model"] == "resnet" and (tmp_path / "ssm" / "encoder" / "model").is_dir()
    scores = _test_scores(tmp_path / "ssm", blocks, tmp_path)
    assert np.isfinite(scores["gmgs"])
    other = root / "other-folds.yaml"
    other.write_text(FOLDS_YAML.replace("2012-01-20", "2012-01-19"))
    with pytest.raises(CheckpointError, match="trained on fold"):
        train(_config(blocks, tmp_path / "bad", model="deit", folds=str(other), teacher=str(cnn),
                      model_overrides=TINY_DEIT))


def test_flux_input_adds_the_goes_flux_known_at_issue_time(blocks, tmp_path):
    from forecasting.tasks import get_task, make_dataset, select_samples
    from forecasting.fold_data import FluxPlane
    ds, _ = blocks
    samples = select_samples(ds, get_task("binary-24h"))
    with_flux = FluxPlane(ds, make_dataset(ds, samples, 1))
    k = 148
    i = samples.indices[k]
    now = ds.labels["goes_flux"].to_numpy()
    past = now[(ds.times > ds.times[i] - pd.Timedelta(hours=24)) & (ds.times <= ds.times[i])].max()
    x, _ = with_flux[k]
    assert x.shape[0] == 3
    assert torch.allclose(x[1], torch.full_like(x[1], float((np.log10(now[i]) + 6) / 2)))
    assert torch.allclose(x[2], torch.full_like(x[2], float((np.log10(past) + 6) / 2)))
    assert past > now[i]                         # frame 148 is 4 h into a C block after an M one
    train(_config(blocks, tmp_path / "fx", model="resnet", flux_input=True, sampling="balanced",
                  model_overrides=TINY_RESNET))
    assert load_checkpoint(tmp_path / "fx")[1].config.in_channels == 3
    scores = _test_scores(tmp_path / "fx", blocks, tmp_path)
    assert scores["n"] == 11 * 24 and np.isfinite(scores["ge_m"]["tss"])


def test_undefined_validation_score_keeps_the_last_epoch(blocks, tmp_path):
    """A validation window without any event has no TSS: the run keeps its last epoch."""
    ds, root = blocks
    quiet = root / "quiet-folds.yaml"                 # validation Jan 25-28: B and C blocks only
    quiet.write_text(FOLDS_YAML.replace("val:   [2012-01-24, 2012-01-31]",
                                        "val:   [2012-01-25, 2012-01-28]"))
    summary = train(_config(blocks, tmp_path / "q", model="resnet", folds=str(quiet), epochs=2,
                            model_overrides=TINY_RESNET))
    assert summary["val_score_undefined"] and summary["best_epoch"] == 1
    assert load_checkpoint(tmp_path / "q")[0]["decision"]["thresholds"] == [0.5]
