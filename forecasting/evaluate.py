"""Evaluate a trained forecaster on any dataset directory, and cross-validate over all folds.

`evaluate_checkpoint` writes to its output directory:
    metrics.json        every score (metrics.md), with BSS and GMGS against the TRAINING
                        climatology stored in the checkpoint; the forecast applies the decision
                        thresholds saved with the checkpoint (chosen on validation data);
                        `collapsed` when it is one class for every sample; samples used and
                        excluded
    probabilities.csv   one row per sample: t_obs, frame index, observed class, forecast, p_<class>,
                        the event (>= M; eruptive for the eruptive tasks) observed and its probability
    confusion.png       the contingency table
    reliability.png     reliability diagram for >= M (10 bins) with the forecast histogram
    attention.png       attention rollout heat maps over the input frame (ViT models only)

Frames of a dataset normalised differently from the training data are mapped back to raw
brightness and re-normalised with the training normalisation before prediction.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from forecasting import floors, metrics  # noqa: E402
from forecasting.augment import Transformed  # noqa: E402
from forecasting.decision import decide  # noqa: E402
from forecasting.tasks import Samples, get_task, make_dataset, part_samples, select_samples  # noqa: E402
from forecasting.config import CheckpointError, ForecastConfig  # noqa: E402
from forecasting.calibration import apply_temperature  # noqa: E402
from forecasting.fold_data import FluxPlane, FrameMap, materialise  # noqa: E402
from forecasting.checkpoint import ENCODER_DIR, load_checkpoint  # noqa: E402
from forecasting.train import predict, train  # noqa: E402
from solargen import io  # noqa: E402
from solargen.data.dataset import Normalisation, SolarDataset, load_dataset  # noqa: E402
from solargen.data.splits import Fold  # noqa: E402


def _renormaliser(meta: dict[str, Any], ds_norm: dict[str, Any]) -> FrameMap | None:
    """None when the data share the training normalisation, else a frames -> frames map."""
    if ds_norm == meta["normalisation"]:
        return None
    source, target = Normalisation.from_dict(ds_norm), Normalisation.from_dict(meta["normalisation"])
    channels = len(target.lo)

    def renormalise(x: np.ndarray) -> np.ndarray:   # image channels only (not a flux plane)
        y = np.array(x, dtype=np.float32)
        y[..., :channels, :, :] = target.normalise(source.denormalise(y[..., :channels, :, :]))
        return y
    return renormalise


def forecast_samples(checkpoint: str | Path, meta: dict[str, Any], model: Any, ds: SolarDataset,
                     samples: Samples, dataset: torch.utils.data.Dataset,
                     batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, K) and forecast classes (N,) of a loaded checkpoint for `samples`
    (`dataset` is their FrameDataset / SequenceDataset): the same path for `forecast evaluate`,
    `forecast cv` and the ablation cells."""
    frame_map = _renormaliser(meta, ds.meta["normalisation"])
    if meta["kind"] == "floor":
        x = floors.features(meta["model"], ds, samples.indices, frame_map,
                            label_column=get_task(meta["task"]).column)
        probs = floors.predict_proba(model, x, len(meta["classes"]))
    else:
        encoder = load_checkpoint(Path(checkpoint) / ENCODER_DIR)[1] if meta.get("encoder") else None
        if encoder is not None or int(meta["history"]) == 1:
            dataset, _ = materialise(dataset, encoder, frame_map)
        elif frame_map is not None:                    # raw histories stay lazy (too large)
            dataset = Transformed(dataset, lambda x: torch.from_numpy(frame_map(x.numpy())))
        loader = DataLoader(dataset, batch_size=batch_size)
        raw, _ = predict(model, loader, logit_shift=np.asarray(meta["logit_shift"]), desc="evaluate")
        # the forecast from the probabilities the thresholds were set on; the calibrated ones reported
        return (apply_temperature(raw, meta.get("calibration", {}).get("temperature", 1.0)),
                decide(raw, meta["decision"]["thresholds"]))
    return probs, decide(probs, meta["decision"]["thresholds"])


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, out: str | Path,
                        part: str | None = None, batch_size: int = 64,
                        heatmaps: int = 4) -> dict[str, Any]:
    """Score `checkpoint` on dataset `data` (all usable frames, or one window of the training
    fold with `part` = train/val/test) and write the report files to `out`."""
    meta, model = load_checkpoint(checkpoint)
    ds = load_dataset(data)
    if ds.channels != meta["channels"] or ds.size != meta["image_size"]:
        raise CheckpointError(f"{data}: channels {ds.channels} at {ds.size} px, but the model in "
                              f"{checkpoint} was trained on {meta['channels']} at "
                              f"{meta['image_size']} px")
    task = get_task(meta["task"])
    history, cadence = int(meta["history"]), float(meta["cadence_hours"])
    if part is None:
        samples = select_samples(ds, task)
    else:
        ranges = meta["fold"]["ranges"]
        if part not in ranges:
            raise CheckpointError(f"{checkpoint}: fold {meta['fold']['name']} has no {part!r} part")
        fold = Fold(meta["fold"]["name"],
                    {p: (pd.Timestamp(a), pd.Timestamp(b)) for p, (a, b) in ranges.items()})
        samples = part_samples(ds, task, fold, part, history, cadence)
    dataset = make_dataset(ds, samples, history, cadence)
    if meta["config"].get("flux_input"):
        dataset = FluxPlane(ds, dataset)
    if len(dataset) == 0:
        raise CheckpointError(f"{data}: no usable samples for task {task.name} "
                              f"(excluded: {samples.excluded})")
    renorm = _renormaliser(meta, ds.meta["normalisation"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if meta["kind"] == "deep":
        model.to(device)
    probs_np, forecast = forecast_samples(checkpoint, meta, model, ds, samples, dataset, batch_size)
    targets = samples.targets
    scores = metrics.score_forecasts(probs_np, targets, np.asarray(meta["train_climatology"]),
                                     task.event_class, forecast)
    out = Path(out)
    report = {
        "task": task.name, "model": meta["model"], "checkpoint": str(checkpoint), "data": str(data),
        "data_synthetic": ds.synthetic, "part": part or "all", "classes": list(task.classes),
        "history": history, "excluded": samples.excluded, "renormalised": renorm is not None,
        "train_climatology": meta["train_climatology"],
        "climatology_smoothed": meta["climatology_smoothed"],
        "decision": meta["decision"], "collapsed": scores["collapsed"],
        "scores": scores, "provenance": io.provenance(),
    }
    io.write_json(out / "metrics.json", report)
    _write_probabilities(out / "probabilities.csv", ds, samples.indices, targets, probs_np,
                         forecast, task)
    _confusion_figure(out / "confusion.png", np.asarray(scores["confusion_matrix"]), task.classes,
                      f"{meta['model']} {task.name} ({part or 'all'})")
    _reliability_figure(out / "reliability.png", scores["reliability_ge_m"],
                        scores["bss_ge_m"], f"{meta['model']} {task.name}: >= M")
    if hasattr(model, "attention_map") and not meta.get("encoder") and heatmaps > 0:
        _attention_figure(out / "attention.png", model, dataset, probs_np, task, heatmaps,
                          renorm, device)
    return report


def _write_probabilities(path: Path, ds, indices, targets, probs, forecast, task) -> None:
    table = pd.DataFrame({"t_obs": ds.times[indices], "frame_index": indices,
                          "observed": [task.classes[t] for t in targets],
                          "forecast": [task.classes[k] for k in forecast]})
    for k, name in enumerate(task.classes):
        table[f"p_{name}"] = probs[:, k]
    table["event observed"] = np.asarray(targets) >= task.event_class   # >= M, or eruptive
    table["event probability"] = probs[:, task.event_class:].sum(axis=1)
    io.write_text(path, table.to_csv(index=False))


def _save(fig, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _confusion_figure(path: Path, cm: np.ndarray, classes, title: str) -> None:
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("forecast")
    ax.set_ylabel("observed")
    ax.set_title(title)
    _save(fig, path)


def _reliability_figure(path: Path, rel: dict, bss: float, title: str) -> None:
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.5, 6), height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect reliability")
    f, o = np.asarray(rel["mean_forecast"], float), np.asarray(rel["observed_frequency"], float)
    ok = np.isfinite(f) & np.isfinite(o)
    ax.plot(f[ok], o[ok], "o-", label=f"forecast (BSS {bss:.3f})")
    ax.set_ylabel("observed frequency")
    ax.set_title(title)
    ax.legend(loc="upper left")
    edges = np.asarray(rel["edges"])
    hist.bar(edges[:-1], rel["count"], width=np.diff(edges), align="edge", edgecolor="k")
    hist.set_yscale("log")
    hist.set_ylim(bottom=0.5)
    hist.set_xlabel("forecast probability of >= M")
    hist.set_ylabel("count")
    _save(fig, path)


def _attention_figure(path: Path, model, dataset, probs, task, n: int, renorm, device) -> None:
    """The `n` samples with the highest and lowest event probability (>= M, or eruptive), frame +
    rollout overlay."""
    event = probs[:, task.event_class:].sum(axis=1)
    order = np.argsort(event)
    picks = list(dict.fromkeys([*order[::-1][: (n + 1) // 2], *order[: n // 2]]))
    x = torch.stack([dataset[int(i)][0] for i in picks])
    x = torch.from_numpy(renorm(x.numpy())) if renorm else x
    heat = model.attention_map(x.to(device)).cpu().numpy()
    frames = (x[:, -1] if x.ndim == 5 else x)[:, 0].numpy()
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 5.4), squeeze=False)
    for col, (i, frame, h) in enumerate(zip(picks, frames, heat)):
        axes[0, col].imshow(frame, cmap="gray", vmin=-1, vmax=1)
        axes[0, col].set_title(f"p({task.event_name})={event[i]:.2f}\nobs {task.classes[int(dataset[int(i)][1])]}",
                               fontsize=8)
        axes[1, col].imshow(frame, cmap="gray", vmin=-1, vmax=1)
        axes[1, col].imshow(h, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle("attention rollout (most recent frame, first channel)", fontsize=9)
    _save(fig, path)


def _table_metrics(scores: dict[str, Any]) -> dict[str, float]:
    row = {"collapsed": float(scores["collapsed"]),
           "tss_ge_m": scores["ge_m"]["tss"], "hss_ge_m": scores["ge_m"]["hss"],
           "bss_ge_m": scores["bss_ge_m"], "recall_ge_m": scores["ge_m"]["recall"],
           "precision_ge_m": scores["ge_m"]["precision"]}
    if "gmgs" in scores:
        row = {"gmgs": scores["gmgs"], "gmgs_eval_clim": scores["gmgs_eval_climatology"],
               **row, "accuracy": scores["accuracy"]}
    else:
        row["accuracy"] = scores["ge_m"]["accuracy"]
    return row


def _fold_rows(config: ForecastConfig, fold_names: list[str]) -> dict[str, dict[str, float]]:
    """Train and test every fold into <config.out>/<fold>; one row of test scores per fold."""
    out = Path(config.out)
    rows = {}
    for name in fold_names:
        train(dataclasses.replace(config, fold=name, out=str(out / name)))
        report = evaluate_checkpoint(out / name, config.data, out / name / "test", part="test")
        rows[name] = {"n": report["scores"]["n"], **_table_metrics(report["scores"])}
    return rows


def _aggregate(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
    table = pd.DataFrame(rows).T
    return {"folds": rows, "mean": table.mean().to_dict(), "std": table.std(ddof=1).to_dict(),
            "collapsed_folds": [name for name, row in rows.items() if row["collapsed"]]}


def cross_validate(config: ForecastConfig, fold_names: list[str],
                   with_floors: bool = True) -> dict[str, Any]:
    """Train and test every fold into <out>/<fold> and, beside a deep model, the classical floors
    into <out>/floors/<floor>/<fold>; write cv.json and cv.md (mean ± std, floors beside)."""
    out = Path(config.out)
    summary = {"config": dataclasses.asdict(config), **_aggregate(_fold_rows(config, fold_names))}
    if with_floors and config.model not in floors.SKLEARN_MODELS:
        summary["floors"] = {
            floor: _aggregate(_fold_rows(dataclasses.replace(
                config, model=floor, history=1, model_overrides={},
                out=str(out / "floors" / floor)), fold_names))
            for floor in floors.FLOORS}
    summary["provenance"] = io.provenance()
    if PartialState().is_main_process:            # under accelerate launch: one writer
        io.write_json(out / "cv.json", summary)
        io.write_text(out / "cv.md", format_cv_table(summary, config))
    return summary


def format_cv_table(summary: dict[str, Any], config: ForecastConfig) -> str:
    """Per-fold rows and mean ± std of the model, then the floors' mean ± std beside it."""
    table = pd.DataFrame(summary["folds"]).T
    cols = [c for c in table.columns if c not in ("n", "collapsed")]
    collapsed = len(summary["collapsed_folds"])
    lines = [f"# Cross-validation: {config.model} ({config.size}), {config.task}, loss "
             f"{config.loss.name}", "", f"data: {config.data}; folds: {config.folds}", "",
             "| fold | n | collapsed | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for name, row in table.iterrows():
        lines.append(f"| {name} | {int(row['n'])} | {'yes' if row['collapsed'] else 'no'} | "
                     + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")

    def mean_row(label: str, agg: dict[str, Any]) -> str:
        mean, std = agg["mean"], agg["std"]
        return (f"| {label} | | {len(agg['collapsed_folds'])}/{len(agg['folds'])} | "
                + " | ".join(f"{mean[c]:.3f} ± {std[c]:.3f}" for c in cols) + " |")

    lines.append(mean_row("mean ± std", summary))
    for floor, agg in summary.get("floors", {}).items():
        lines.append(mean_row(f"floor: {floor}", agg))
    if collapsed:
        lines += ["", f"{collapsed} of {len(table)} folds collapsed: the test forecast is one class "
                      "for every sample (a constant forecast; its TSS is 0 by construction)."]
    if "floors" in summary:
        lines += ["", "Floors: mean ± std over the same folds (forecasting.floors); climatology is "
                      "a constant forecast and collapses by construction."]
    return "\n".join(lines) + "\n"
