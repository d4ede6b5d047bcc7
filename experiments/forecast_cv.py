"""The forecaster cross-validation study: every recipe over folds x seeds beside the classical
floors, each deep model's increment over its own floor with paired statistics, seed ensembles.

    python bench/forecast_cv3.py --data data/aia3-2012-64 --runs runs/forecast-cv-3 \\
        --out docs/results/<date>-forecast-cv-cpu-3 [--recipes resnet-flux resnet-floor] \\
        [--seeds 0 1 2] [--folds f1 f2 f3] [--tasks binary-24h]

A unit is one (fold, seed): each deep recipe is trained with `forecasting.train.train` into
<runs>/<task>/<recipe>/seed<k>/<fold> and scored on that fold's validation and test windows with
`forecasting.evaluate.evaluate_checkpoint` (the CLI's path); the floors are trained once per fold
(they do not depend on the seed). Everything finished is reused, so a killed study resumes.
The increment of a recipe is its test score minus its own floor's on the same fold, paired over
the units: mean, BCa 95 % interval, Wilcoxon p (from 5 units), Holm-adjusted over every
(recipe, metric) tested on the same task. A seed ensemble averages the seeds' probabilities per fold and decides
by the recipe's rule (thresholds chosen on the averaged validation probabilities, or at the
training climatology).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from experiments.ablation_stats import MIN_PAIRS, bootstrap_ci, holm, wilcoxon_p  # noqa: E402
from forecasting import metrics  # noqa: E402
from forecasting.calibration import apply_temperature  # noqa: E402
from forecasting.config import ForecastConfig, load_forecast_config  # noqa: E402
from forecasting.decision import choose_thresholds, climatology_thresholds, decide  # noqa: E402
from forecasting.evaluate import evaluate_checkpoint  # noqa: E402
from forecasting.floors import FLOORS  # noqa: E402
from forecasting.tasks import get_task  # noqa: E402
from forecasting.train import train  # noqa: E402
from solargen import io  # noqa: E402
from solargen.errors import SolargenError  # noqa: E402

# recipe name -> (shipped config, the floor it contains or is measured against)
RECIPES: dict[str, tuple[str, str]] = {
    "resnet": ("forecast/resnet-cpu", "flux-history"),
    "resnet-flux": ("forecast/resnet-flux-cpu", "flux-history"),
    "resnet-floor": ("forecast/resnet-floor-cpu", "flux-history"),
    "resnet-floor-raw": ("forecast/resnet-floor-raw-cpu", "flux-history"),
    "deit-floor": ("forecast/deit-floor-cpu", "flux-history"),
}
METRICS = ("tss", "hss", "bss", "auc")          # of the >= M event; 4-class tasks add GMGS first
# the targets of issue #26: binary >= M within 24 h, and 4-class within 24 h
TARGETS = {"tss_over_persistence": 0.05, "bss": 0.10, "gmgs_4class": 0.35}


NAMES = {"gmgs": "GMGS", "tss": "TSS >= M", "hss": "HSS >= M", "bss": "BSS >= M", "auc": "AUC >= M"}


def task_metrics(task: str) -> tuple[str, ...]:
    return ("gmgs", *METRICS) if get_task(task).num_classes > 2 else METRICS


def unit_scores(report: dict[str, Any], probabilities: pd.DataFrame) -> dict[str, float]:
    """Test scores of one checkpoint: TSS, HSS (>= M), BSS, AUC of the event probability."""
    scores = report["scores"]
    event = probabilities["event observed"].to_numpy(bool)
    auc = roc_auc_score(event, probabilities["event probability"]) if 0 < event.sum() < len(event) else np.nan
    return {"gmgs": scores.get("gmgs", float("nan")), "tss": scores["ge_m"]["tss"],
            "hss": scores["ge_m"]["hss"], "bss": scores["bss_ge_m"], "auc": float(auc),
            "collapsed": bool(scores["collapsed"]), "n": scores["n"]}


def _scored(out: Path, data: str, part: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """evaluate_checkpoint on one window, reused when its metrics exist."""
    where = out / part
    if not (where / "metrics.json").is_file():
        evaluate_checkpoint(out, data, where, part=part, heatmaps=0)
    return io.read_json(where / "metrics.json"), pd.read_csv(where / "probabilities.csv")


def _trained(config: ForecastConfig) -> dict[str, Any]:
    """The checkpoint of `config`, trained unless a finished one of the same config is there (one
    of another config is an error: a study never mixes settings)."""
    out = Path(config.out)
    if (out / "forecast.json").is_file():
        saved = io.read_json(out / "forecast.json")["config"]
        if saved != json.loads(json.dumps(dataclasses.asdict(config))):
            raise SolargenError(f"{out}: holds a run of another config; give the study a new --runs "
                                "folder (or remove that run)")
    if not (out / "forecast.json").is_file() or not (out / "test" / "metrics.json").is_file():
        train(config)
    return io.read_json(out / "forecast.json")


def run_unit(task: str, recipe: str | None, floor: str | None, data: str, runs: Path,
             folds_file: str, fold: str, seed: int) -> dict[str, Any]:
    """Train (or reuse) one recipe or floor on one fold and seed; its test row and val/test
    probabilities."""
    if recipe is not None:
        out = runs / task / recipe / f"seed{seed}" / fold
        config = load_forecast_config(RECIPES[recipe][0], [f"task={task}", f"data={data}",
                                      f"folds={folds_file}", f"fold={fold}", f"seed={seed}", f"out={out}"])
    else:
        out = runs / task / "floors" / floor / fold
        config = ForecastConfig(model=floor, task=task, data=data, folds=folds_file, fold=fold,
                                out=str(out))
    meta = _trained(config)
    val = _scored(out, data, "val")
    test = _scored(out, data, "test")
    row = {"task": task, "model": recipe or floor, "kind": "deep" if recipe else "floor",
           "fold": fold, "seed": seed if recipe else None, **unit_scores(*test),
           "val_tss": val[0]["scores"]["ge_m"]["tss"], "val_bss": val[0]["scores"]["bss_ge_m"],
           "temperature": meta.get("calibration", {}).get("temperature", 1.0),
           "best_epoch": meta.get("best_epoch")}
    return {"row": row, "val": val[1], "test": test[1], "climatology": meta["train_climatology"],
            "temperature": row["temperature"]}


def ensemble_row(task: str, recipe: str, fold: str, units: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' mean probabilities on one fold (reported calibrated), decided as the members are:
    on the mean of their uncalibrated probabilities, by the recipe's rule (thresholds chosen on the
    validation means, or at the training climatology)."""
    classes = list(get_task(task).classes)
    cols = [f"p_{c}" for c in classes]

    def mean(part: str, raw: bool) -> np.ndarray:
        """The seeds' mean probabilities as reported (calibrated), or as decided on (each member's
        temperature undone: softmax(log p / T) has the inverse T -> 1 / T)."""
        return np.mean([apply_temperature(u[part][cols].to_numpy(), 1.0 / u["temperature"]) if raw
                        else u[part][cols].to_numpy() for u in units], axis=0)

    val_targets = units[0]["val"]["observed"].map(classes.index).to_numpy()
    targets = units[0]["test"]["observed"].map(classes.index).to_numpy()
    decision = load_forecast_config(RECIPES[recipe][0]).decision
    thresholds = (climatology_thresholds(np.asarray(units[0]["climatology"])) if decision == "climatology"
                  else choose_thresholds(mean("val", True), val_targets))
    task_spec = get_task(task)
    test = mean("test", False)
    scores = metrics.score_forecasts(test, targets, np.asarray(units[0]["climatology"]),
                                     task_spec.event_class, decide(mean("test", True), thresholds))
    frame = pd.DataFrame({"event observed": targets >= task_spec.event_class,
                          "event probability": test[:, task_spec.event_class:].sum(axis=1)})
    return {"task": task, "model": f"{recipe} (ensemble of {len(units)})", "kind": "ensemble",
            "fold": fold, "seed": None,
            **unit_scores({"scores": scores}, frame)}


def increments(rows: pd.DataFrame, task: str) -> list[dict[str, Any]]:
    """Each deep recipe minus its own floor on the same fold, paired over (fold, seed) units."""
    out = []
    floors = rows[(rows.task == task) & (rows.kind == "floor")].set_index(["model", "fold"])
    for recipe, (_, floor) in RECIPES.items():
        units = rows[(rows.task == task) & (rows.model == recipe)]
        if units.empty:
            continue
        for metric in task_metrics(task):
            diffs = np.array([getattr(u, metric) - floors.loc[(floor, u.fold), metric] for u in units.itertuples()])
            ci = bootstrap_ci(diffs)
            out.append({"task": task, "model": recipe, "floor": floor, "metric": metric,
                        "units": len(diffs), "mean": float(np.mean(diffs)),
                        "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                        "p": wilcoxon_p(diffs)})
    tested = [i for i, r in enumerate(out) if r["p"] is not None]
    for i, p in zip(tested, holm([out[i]["p"] for i in tested])):
        out[i]["p_holm"] = p
    return out


def run_study(data: str, runs: Path, recipes: list[str], tasks: list[str], folds_file: str,
              fold_names: list[str], seeds: list[int]) -> dict[str, Any]:
    """Every floor per fold and every recipe per (fold, seed); the rows, increments, ensembles."""
    rows, ensembles, comparison = [], [], []
    for task in tasks:
        for fold in fold_names:
            for floor in FLOORS:
                rows.append(run_unit(task, None, floor, data, runs, folds_file, fold, 0)["row"])
        for recipe in recipes:
            for fold in fold_names:
                units = [run_unit(task, recipe, None, data, runs, folds_file, fold, seed) for seed in seeds]
                rows += [u["row"] for u in units]
                if len(units) > 1:
                    ensembles.append(ensemble_row(task, recipe, fold, units))
        comparison += increments(pd.DataFrame(rows), task)
    return {"rows": rows, "ensembles": ensembles, "increments": comparison,
            "units_needed_for_p": MIN_PAIRS}


def mean_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean ± std over units per (task, model), with collapsed and negative-BSS unit counts."""
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["task", "model"], sort=False)
    table = grouped[["gmgs", *METRICS]].agg(["mean", "std"])
    table.columns = [f"{m}_{s}" for m, s in table.columns]
    table["units"] = grouped.size()
    table["collapsed_units"] = grouped["collapsed"].sum().astype(int)
    table["negative_bss_units"] = grouped["bss"].apply(lambda b: int((b < 0).sum()))
    if "val_bss" in frame:          # flagged like a collapsed model: BSS < 0 on validation
        # (an ensemble has no validation score of its own: NaN, shown as n/a)
        table["negative_val_bss_units"] = grouped["val_bss"].apply(
            lambda b: float((b < 0).sum()) if b.notna().any() else float("nan"))
    return table.reset_index()


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue #26's binary-24h targets, met or missed and by how much (means over units)."""
    table = pd.DataFrame(summary["table"])
    binary = table[table.task == "binary-24h"].set_index("model")
    if binary.empty or "persistence" not in binary.index:
        return []
    deep = [m for m in binary.index if m in RECIPES]
    if not deep:
        return []
    best = max(deep, key=lambda m: binary.loc[m, "tss_mean"])
    persistence = binary.loc["persistence", "tss_mean"]
    out = [{"target": "best deep model's mean test TSS >= persistence + 0.05", "model": best,
            "value": binary.loc[best, "tss_mean"], "needed": persistence + TARGETS["tss_over_persistence"]},
           {"target": "best deep model's mean test BSS >= 0.10", "model": best,
            "value": binary.loc[best, "bss_mean"], "needed": TARGETS["bss"]}]
    for model in deep:
        floor = RECIPES[model][1]
        out.append({"target": "BSS > 0", "model": model, "value": binary.loc[model, "bss_mean"], "needed": 0.0})
        out.append({"target": f"TSS >= its own floor ({floor})", "model": model,
                    "value": binary.loc[model, "tss_mean"], "needed": binary.loc[floor, "tss_mean"]})
    four = table[table.task == "4class-24h"].set_index("model")
    deep4 = [m for m in four.index if m in RECIPES]
    if deep4:
        best4 = max(deep4, key=lambda m: four.loc[m, "gmgs_mean"])
        out.append({"target": "4-class 24 h: best deep model's mean test GMGS >= 0.35", "model": best4,
                    "value": four.loc[best4, "gmgs_mean"], "needed": TARGETS["gmgs_4class"]})
    for item in out:
        item["met"] = bool(item["value"] >= item["needed"] if item["target"] != "BSS > 0"
                           else item["value"] > item["needed"])
        item["by"] = float(item["value"] - item["needed"])
    return out


def figures(summary: dict[str, Any], runs: Path, out: Path) -> list[str]:
    """tss_units.png (every unit's test TSS per model, floors beside) and reliability.png (test
    reliability of each deep recipe, all units pooled, against the floors)."""
    rows = pd.DataFrame(summary["rows"])
    written = []
    for task, group in rows.groupby("task", sort=False):
        models = list(dict.fromkeys(group.model))
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(models), 3.4))
        for i, model in enumerate(models):
            values = group[group.model == model]
            ax.scatter(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values.tss,
                       s=18, color="tab:gray" if values.kind.iloc[0] == "floor" else "tab:blue")
            ax.hlines(values.tss.mean(), i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("test TSS (>= M)")
        ax.set_title(f"{task}: every (fold, seed) unit; floors in grey", fontsize=9)
        fig.tight_layout()
        name = f"tss_units_{task}.png"
        _save(fig, out / name)
        written.append(name)
        fig, ax = plt.subplots(figsize=(4.2, 4.0))
        bins = np.linspace(0, 1, 11)
        for model in models:
            probs = pd.concat([pd.read_csv(p) for p in sorted(_probability_files(runs, task, model))])
            p, y = probs["event probability"].to_numpy(), probs["event observed"].to_numpy(bool)
            which = np.clip(np.digitize(p, bins) - 1, 0, 9)
            keep = [b for b in range(10) if (which == b).sum() >= 5]
            ax.plot([p[which == b].mean() for b in keep], [y[which == b].mean() for b in keep],
                    marker="o", ms=3, label=model, ls="--" if model in FLOORS else "-")
        ax.plot([0, 1], [0, 1], color="k", lw=0.6)
        ax.set_xlabel("forecast P(>= M)")
        ax.set_ylabel("observed frequency")
        ax.set_title(f"{task}: test reliability, units pooled (bins of >= 5)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"reliability_{task}.png"
        _save(fig, out / name)
        written.append(name)
    return written


def _save(fig: Any, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _probability_files(runs: Path, task: str, model: str) -> list[Path]:
    root = runs / task / ("floors/" + model if model in FLOORS else model)
    return list(root.glob("**/test/probabilities.csv"))


def summarise(study: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """summary.json: the study's rows, table, ensembles, increments, targets and settings."""
    summary = {**study, "config": config,
               "table": mean_table(study["rows"] + study["ensembles"]).to_dict(orient="records")}
    summary["targets"] = targets(summary)
    return summary


def render(summary: dict[str, Any]) -> str:
    """README.md, every number read from summary.json."""
    cfg = summary["config"]
    lines = [f"# Forecasters and their floors: {', '.join(cfg['tasks'])}, {len(cfg['folds'])} folds x "
             f"{len(cfg['seeds'])} seeds", "",
             f"Data: `{cfg['data']}` ({cfg['data_kind']}); folds `{cfg['folds_file']}` "
             f"({', '.join(cfg['folds'])}); seeds {cfg['seeds']}; recipes "
             + ", ".join(f"`{r}` (`configs/{RECIPES[r][0]}.yaml`)" for r in cfg["recipes"]) + ".",
             "A unit is one (fold, seed); floors do not depend on the seed (one per fold). Scores on "
             "the test windows; every choice (epoch, temperature, val-tss thresholds) on validation, "
             "the floors' and the climatology thresholds on the training split, nothing on test.", ""]
    for task in cfg["tasks"]:
        names = task_metrics(task)
        lines += [f"## {task}: test scores, mean ± std over units", "",
                  "| model | units | " + " | ".join(NAMES[m] for m in names) + " | collapsed units | "
                  "units with test BSS < 0 | units with validation BSS < 0 (flagged) |",
                  "|---|---|" + "---|" * (len(names) + 3)]
        for r in summary["table"]:
            if r["task"] != task:
                continue
            cells = " | ".join(f"{r[m + '_mean']:.3f} ± {r[m + '_std']:.3f}" if np.isfinite(r[m + "_std"])
                               else f"{r[m + '_mean']:.3f}" for m in names)
            flagged = r.get("negative_val_bss_units")
            flagged = "n/a" if flagged is None or not np.isfinite(flagged) else int(flagged)
            lines.append(f"| {r['model']} | {r['units']} | {cells} | {r['collapsed_units']} | "
                         f"{r['negative_bss_units']} | {flagged} |")
        lines += ["", f"### Increment over the model's own floor (paired over units; Holm over "
                  f"this task's tests; p only from {summary['units_needed_for_p']} units)", "",
                  "| model | floor | metric | units | mean increment | 95 % CI (BCa) | p (Wilcoxon) | p (Holm) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in summary["increments"]:
            if r["task"] != task:
                continue
            ci = f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None else "n/a"
            p = f"{r['p']:.3g}" if r["p"] is not None else "n/a"
            ph = f"{r['p_holm']:.3g}" if r.get("p_holm") is not None else "n/a"
            lines.append(f"| {r['model']} | {r['floor']} | {r['metric']} | {r['units']} | "
                         f"{r['mean']:+.3f} | {ci} | {p} | {ph} |")
        lines.append("")
    if summary["targets"]:
        lines += ["## Targets (issue #26)", "",
                  "| target | model | value | needed | met | by |", "|---|---|---|---|---|---|"]
        for t in summary["targets"]:
            lines.append(f"| {t['target']} | {t['model']} | {t['value']:.3f} | {t['needed']:.3f} | "
                         f"{'yes' if t['met'] else 'no'} | {t['by']:+.3f} |")
        lines.append("")
    if summary.get("notes"):
        lines += ["## Notes", ""] + [line for note in summary["notes"] for line in (note, "")]
    lines += ["Figures: " + ", ".join(f"`{f}`" for f in summary.get("figures", [])) + ".", "",
              f"Command: see `command.txt`; git commit {summary['provenance']['git_commit']}.", ""]
    return "\n".join(lines)


def config_record(data: str, folds_file: str, fold_names: list[str], seeds: list[int],
                  recipes: list[str], tasks: list[str], data_kind: str) -> dict[str, Any]:
    return {"data": data, "folds_file": folds_file, "folds": fold_names, "seeds": seeds,
            "recipes": recipes, "tasks": tasks, "data_kind": data_kind,
            "recipe_configs": {r: dataclasses.asdict(load_forecast_config(RECIPES[r][0])) for r in recipes}}
