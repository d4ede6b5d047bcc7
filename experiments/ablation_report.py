"""The ablation report: report.md, results.json, command.txt and figures/*.png.

For every (task, model): each strategy's metrics as mean ± std over its cells (seeds x folds, and
synthetic sets for the N strategies); metric-vs-N plots with bootstrap 95 % confidence bands and
the classical floors as lines; each strategy against "none" over the same (fold, seed) units
(experiments.ablation_stats: mean paired difference, BCa bootstrap CI, Wilcoxon from 5 pairs, Holm
across every comparison; collapsed pairs left out and counted); the device hours each strategy
cost; and verdict sentences generated from those numbers. summary.json holds the comparisons of
the first metric and the overall verdict.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from itertools import cycle
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments.ablation_stats import (MIN_PAIRS, Comparison, bootstrap_ci, compare,  # noqa: E402
                                        identically_zero, units_table, verdict)
from forecasting.augment import get_strategy  # noqa: E402
from forecasting.floors import FLOORS  # noqa: E402
from forecasting.tasks import get_task  # noqa: E402
from solargen import io  # noqa: E402
from solargen.data.dataset import load_dataset  # noqa: E402
from solargen.data.splits import load_folds  # noqa: E402

SECTIONS = ("## Data and protocol", "## Leakage", "## Results", "## Significance against none",
            "## Cost", "## Verdict")


def _label(strategy: str, n: int) -> str:
    return f"{strategy} N={n}" if n else strategy


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if not len(v):
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def _fmt(mean: float, std: float, n: int) -> str:
    return "n/a" if n == 0 else f"{mean:.3f} ± {std:.3f}"


def aggregate(results: list[dict[str, Any]], metric_names: list[str]) -> list[dict[str, Any]]:
    """One row per (task, model, strategy, N): mean, std and count of every metric."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        c = r["cell"]
        groups[(c["task"], c["model"], c["strategy"], c["n"])].append(r)
    rows = []
    for (task, model, strategy, n), rs in groups.items():
        row = {"task": task, "model": model, "strategy": strategy, "n": n, "cells": len(rs),
               "floor": bool(rs[0].get("floor")),
               "collapsed_cells": int(sum(r["metrics"].get("collapsed", 0) for r in rs))}
        for m in metric_names:
            mean, std, k = _mean_std([r["metrics"].get(m, float("nan")) for r in rs])
            row[m] = {"mean": mean, "std": std, "count": k}
        rows.append(row)
    order = {s: i for i, s in enumerate(dict.fromkeys(r["cell"]["strategy"] for r in results))}
    return sorted(rows, key=lambda r: (r["task"], r["model"], order[r["strategy"]], r["n"]))


def _device_label(device: str) -> str:
    return "GPU" if str(device).startswith("cuda") else "CPU"


def costs(results: list[dict[str, Any]], generation: list[dict[str, Any]]) -> dict[str, Any]:
    """Device hours per strategy (training + evaluation of its cells), and the generation cost
    (generator training + sampling, shared by the synthetic strategies)."""
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in results:
        seconds = float(r["fit"].get("train_seconds", 0.0)) + float(r["eval_seconds"])
        per[r["cell"]["strategy"]][_device_label(r["device"])] += seconds / 3600
    gen: dict[str, float] = defaultdict(float)
    for g in generation:
        gen[_device_label(g["device"])] += g["train_seconds"] / 3600
        for s in g["sampling"]:
            gen[_device_label(s["device"])] += (s["seconds"] or 0.0) / 3600
    return {"strategies": {k: dict(v) for k, v in per.items()}, "generation": dict(gen),
            "generators": generation}


def _overall(comparisons: list[Comparison], synthetic_names: list[str]) -> str:
    """The one-sentence verdict over every synthetic-strategy comparison, from the numbers."""
    syn = [c for c in comparisons if c.strategy in synthetic_names]
    if not syn:
        return "No synthetic-strategy comparison in this grid."
    tested = [c for c in syn if c.p_holm is not None]
    helps = [c for c in tested if c.significant and c.mean_diff > 0]
    hurts = [c for c in tested if c.significant and c.mean_diff < 0]
    # a collapse belongs to a cell, not to a metric: count each strategy/N row's pairs once
    first_metric = [c for c in syn if c.metric == syn[0].metric]
    collapsed = sum(c.collapsed_pairs for c in first_metric)
    zero = sum(identically_zero(c) for c in syn)
    tail = (f" ({len(syn)} synthetic-strategy comparisons, {len(tested)} with >= {MIN_PAIRS} (fold, seed) pairs and a "
            f"Holm-adjusted p-value" + (f", {zero} identically zero over all pairs (not tested)" if zero else "")
            + f"; {collapsed} (fold, seed) pairs with a collapsed cell left out over the "
            f"{len(first_metric)} strategy/N rows)")
    if not tested:
        return ("Not testable: no comparison has the " f"{MIN_PAIRS} (fold, seed) pairs a p-value needs" + tail + ".")
    if helps and not hurts:
        return "Synthetic minority frames help in " + f"{len(helps)} of {len(tested)} tested comparisons" + tail + "."
    if hurts and not helps:
        return "Synthetic minority frames hurt in " + f"{len(hurts)} of {len(tested)} tested comparisons" + tail + "."
    if helps and hurts:
        return (f"Mixed: synthetic minority frames help in {len(helps)} and hurt in {len(hurts)} of "
                f"{len(tested)} tested comparisons" + tail + ".")
    best = max(tested, key=lambda c: c.mean_diff)
    return ("No detectable effect of synthetic minority frames at this scale: no tested comparison "
            f"is significant after Holm's adjustment; the largest mean gain is {best.mean_diff:+.3f} "
            f"{best.metric.upper()} ({best.strategy} N = {best.n_synthetic}, 95 % CI "
            f"[{best.ci95[0]:+.3f}, {best.ci95[1]:+.3f}])" + tail + ".")


def summary_json(comparisons: list[Comparison], metric: str, overall: str,
                 rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The experiment's summary: units, and per strategy (at each N, per task/model when there are
    several) the first metric's paired comparison with `none`, with the strategy's own collapsed
    cells (`rows`: aggregate()) and the pairs left out because either cell collapsed."""
    collapsed = {(r["task"], r["model"], r["strategy"], r["n"]): r["collapsed_cells"] for r in rows}
    mine = [c for c in comparisons if c.metric == metric]
    several = len({(c.task, c.model) for c in mine}) > 1
    strategies = {}
    for c in mine:
        name = f"{c.strategy}" + (f" N={c.n_synthetic}" if c.n_synthetic else "")
        name = f"{c.task}/{c.model}: {name}" if several else name
        strategies[name] = {"metric": metric, "mean_diff": c.mean_diff,
                            "ci95": list(c.ci95) if c.ci95 else None, "p_holm": c.p_holm,
                            "significant": c.significant, "pairs": c.n_pairs,
                            "collapsed_cells": collapsed.get((c.task, c.model, c.strategy, c.n_synthetic), 0),
                            "collapsed_pairs": c.collapsed_pairs}
    return {"units": max((c.n_pairs + c.collapsed_pairs for c in mine), default=0),
            "strategies": strategies, "verdict": overall}


def summarise(results: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """summary.json and the overall verdict regenerated from a written results.json alone (its
    comparisons, aggregates and config)."""
    comparisons = [Comparison(**{**c, "ci95": tuple(c["ci95"]) if c["ci95"] else None})
                   for c in results["comparisons"]]
    synthetic_names = [s for s in results["config"]["strategies"] if get_strategy(s).synthetic]
    overall = _overall(comparisons, synthetic_names)
    return summary_json(comparisons, results["config"]["metrics"][0], overall, results["aggregates"]), overall


def _figure(units: pd.DataFrame, rows: list[dict], task: str, model: str, metric: str,
            path: Path) -> Path:
    """Metric against N: N strategies as lines with bootstrap 95 % CI bands of the mean over
    (fold, seed) units; the others as horizontal lines with bands; the task's classical floors as
    grey lines of distinct styles, their means in the legend."""
    mine = units[(units["task"] == task) & (units["model"] == model)] if len(units) else units
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ns = sorted({int(n) for n in mine["n_synthetic"] if n}) if len(mine) else []
    for i, strategy in enumerate(dict.fromkeys(mine["strategy"]) if len(mine) else []):
        colour = colours[i % len(colours)]
        pts = []
        for n, group in mine[mine["strategy"] == strategy].groupby("n_synthetic"):
            values = group[metric].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if len(values):
                ci = bootstrap_ci(values) or (values.mean(), values.mean())
                pts.append((int(n), values.mean(), *ci))
        if not pts:
            continue
        x, m, lo, hi = (np.array(v, dtype=float) for v in zip(*pts))
        if get_strategy(strategy).uses_n:
            ax.plot(x, m, "o-", color=colour, label=strategy)
            ax.fill_between(x, lo, hi, color=colour, alpha=0.2)
        else:
            ax.axhline(m[0], color=colour, ls="--", label=strategy)
            ax.axhspan(lo[0], hi[0], color=colour, alpha=0.1)
    floors = [r for r in rows if r["task"] == task and r["floor"] and r[metric]["count"]]
    for r, (grey, ls) in zip(floors, cycle([("0.2", ":"), ("0.45", "-."), ("0.65", (0, (1, 3)))])):
        ax.axhline(r[metric]["mean"], color=grey, ls=ls, lw=1.4,
                   label=f"floor: {r['model']} ({r[metric]['mean']:.3f})")
    ax.set_xlabel("synthetic / copied samples per minority class (N)")
    ax.set_ylabel(metric)
    if len(ns) > 1:
        ax.set_xlim(min(ns), max(ns))
    ax.set_title(f"{task} / {model}: {metric} (mean, 95 % CI over (fold, seed) units)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _table(rows: list[dict], task: str, model: str, metric_names: list[str]) -> list[str]:
    """The model's strategies, then the task's classical floors (real data only) beside them."""
    lines = ["| strategy | N | cells | collapsed | " + " | ".join(metric_names) + " |",
             "|---|---|---|---|" + "---|" * len(metric_names)]
    mine = [r for r in rows if (r["task"], r["model"]) == (task, model)]
    floors = [r for r in rows if r["task"] == task and r["floor"]]
    for r in mine + floors:
        vals = " | ".join(_fmt(r[m]["mean"], r[m]["std"], r[m]["count"]) for m in metric_names)
        label = f"floor: {r['model']}" if r["floor"] else r["strategy"]
        lines.append(f"| {label} | {r['n'] or '-'} | {r['cells']} | "
                     f"{r['collapsed_cells']}/{r['cells']} | {vals} |")
    return lines


def _collapse_sentence(rows: list[dict]) -> str:
    """In words: which rows have cells whose test forecast is a single class."""
    hit = [r for r in rows if r["collapsed_cells"]]
    if not hit:
        return "No cell collapsed: every test forecast uses more than one class."
    return ("Collapsed cells (the test forecast is one class for every sample, a constant "
            "forecast whose TSS is 0 by construction): " + "; ".join(
                f"{r['task']} / {r['model']} / {_label(r['strategy'], r['n'])} "
                f"{r['collapsed_cells']} of {r['cells']}" for r in hit) + ".")


def _p(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _generator_origin(g) -> str:
    """Where each fold's generator came from, in words."""
    trained = f"`{g.config}` {g.overrides or ''}, trained once per fold on that fold's training split"
    if not g.pretrained:
        return trained
    given = ", ".join(f"{fold}: `{path}`" for fold, path in sorted(g.pretrained.items()))
    return (f"pretrained pipelines ({given}), each checked to be trained on its fold's training "
            f"split only; other folds: {trained}")


def write_report(config, results: list[dict[str, Any]], out: str | Path,
                 generation: list[dict[str, Any]]) -> dict[str, Any]:
    """Write report.md, results.json, command.txt and figures under `out`; returns their paths."""
    out = Path(out)
    metric_names = list(config.metrics)
    rows = aggregate(results, metric_names)
    units = units_table(results, metric_names)
    comparisons = compare(units, metric_names) if len(units) else []
    cost = costs(results, generation)
    ds = load_dataset(config.data)
    folds = load_folds(config.folds)
    pairs = list(dict.fromkeys((r["cell"]["task"], r["cell"]["model"]) for r in results
                               if not r.get("floor")))
    synthetic_names = [s for s in config.strategies if get_strategy(s).synthetic]
    figures = [str(_figure(units, rows, t, m, metric, out / "figures" / f"{t}-{m}-{metric}.png")
                   .relative_to(out)) for t, m in pairs for metric in metric_names]
    overall = _overall(comparisons, synthetic_names)
    verdicts = [overall] + [f"- {verdict(c)}" for c in comparisons]
    leak = {k: int(sum(r["samples"].get(k, 0) for r in results))
            for k in ("synthetic_train", "synthetic_val", "synthetic_test", "classical-copy_train",
                      "classical-copy_val", "classical-copy_test")}
    gens = {g["key"]: g for g in (r["generator"] for r in results if r.get("generator"))}

    md = [f"# Augmentation ablation: {config.name}", "", config.description.strip(), ""]
    if ds.synthetic:
        md += ["**These numbers come from the synthetic embedded default dataset, not from solar "
               "data: they check the machinery, not whether synthetic data helps forecasters.**", ""]
    md += [SECTIONS[0], "",
           f"- Dataset: `{config.data}` ({'SYNTHETIC embedded default' if ds.synthetic else 'real'},"
           f" source {ds.meta.get('source')}, channels {ds.channels}, {ds.size} px, {len(ds)} frames)",
           f"- Tasks: {', '.join(config.tasks)}; label columns: "
           f"{', '.join(sorted({r['cell']['task'] + ' -> ' + _column(r) for r in results}))}",
           f"- Folds (`{config.folds}`, gap {folds.gap_hours:g} h, inclusive days): " + "; ".join(
               f"{f.name} " + ", ".join(f"{p} {a.date()}..{(b - pd.Timedelta(days=1)).date()}"
                                        for p, (a, b) in f.ranges.items())
               for f in folds if f.name in {r['cell']['fold'] for r in results}),
           f"- Models: {', '.join(config.models)} (size {config.train.size}); seeds "
           f"{config.seeds}; epochs {config.train.epochs}, batch {config.train.batch_size}, lr "
           f"{config.train.lr:g}, loss {config.train.loss.name} "
           f"({config.train.loss.class_weighting} weights), cosine LR, early stopping on the "
           f"validation window (patience {config.train.patience})",
           f"- Strategies: {', '.join(config.strategies)}; N per minority class "
           f"{sorted(config.n_synthetic)} ({', '.join(config.minority_classes)}); "
           f"{config.synthetic_sets} independent synthetic set(s) per N, nested over N",
           f"- Generator: {_generator_origin(config.generator)}; sampler {config.generator.sampler}, "
           f"{config.generator.steps} steps, guidance {config.generator.guidance_scale:g}",
           "- Real samples per fold (train / val / test): " + "; ".join(sorted({
               f"{r['cell']['task']} {r['cell']['fold']} {r['cell']['model']}: "
               f"{r['samples']['train_real']} / {r['samples']['val']} / {r['samples']['test']}"
               for r in results})),
           "- Mean ± std are over every cell of a row (seeds x folds, and synthetic sets).", ""]
    md += [SECTIONS[1], "",
           f"Synthetic frames in training sets: {leak['synthetic_train']} (summed over cells); in "
           f"validation sets: {leak['synthetic_val']}; in test sets: {leak['synthetic_test']}. "
           f"Classical copies in training: {leak['classical-copy_train']}; in validation/test: "
           f"{leak['classical-copy_val'] + leak['classical-copy_test']}. Every cell asserts these "
           "zeros before training, and checks that val/test frames lie at least the horizon away "
           "from every training frame.", ""]
    if gens:
        md += ["| generator | fold | trained on frames | fold training window |", "|---|---|---|---|"]
        for g in gens.values():
            tr = g["training"]
            md.append(f"| {g['key']} | {g['fold']} | {tr['first_frame']} .. {tr['last_frame']} "
                      f"({tr['frames_used']} frames) | {tr['train_window'][0]} .. "
                      f"{tr['train_window'][1]} |")
        md.append("")
        filters = {json.dumps(r["sampling"]["copy_filter"], sort_keys=True): r["sampling"]["copy_filter"]
                   for r in results if (r.get("sampling") or {}).get("copy_filter")}
        if filters:
            drawn = sum(f["drawn"] for f in filters.values())
            rejected = sum(f["rejected"] for f in filters.values())
            md += [f"Copy filter: over {len(filters)} synthetic set(s), {rejected} of {drawn} drawn frames "
                   f"({rejected / drawn:.1%}) lay closer to a training-window frame than the "
                   f"{config.generator.copy_quantile:.0%} quantile of the held-out validation frames' "
                   "distances and were drawn again; none of the frames used is below it.", ""]
        thin = {g["fold"]: g["not_synthesised"] for g in gens.values() if g.get("not_synthesised")}
        if thin:
            md += [f"Minority classes with fewer than {config.generator.min_class_frames} frames in a "
                   "generator's training split are not synthesised (the synthetic strategies add "
                   "only the others): " + "; ".join(
                       f"fold {fold}: " + ", ".join(f"{c} ({n} frames)" for c, n in t.items())
                       for fold, t in sorted(thin.items())) + ".", ""]
    floor_names = sorted({r["cell"]["model"] for r in results if r.get("floor")})
    md += [SECTIONS[2], "",
           (f"Classical floors ({', '.join(floor_names)}; forecasting.floors) are trained on the "
            "real training window only and listed under every model of their task."
            if floor_names else "No classical floor in this grid."), "",
           _collapse_sentence(rows), ""]
    for t, m in pairs:
        md += [f"### {t} / {m}", ""] + _table(rows, t, m, metric_names) + [""]
        md += [f"![{t} {m} {metric}]({f})" for metric, f in
               zip(metric_names, [f for f in figures if f.startswith(f"figures/{t}-{m}-")])] + [""]
    md += [SECTIONS[3], "",
           f"The unit is a (fold, seed) pair: a strategy's cell is paired with the `none` cell of the "
           f"same task, model, fold and seed (repeated synthetic sets averaged within the unit). Mean "
           f"paired difference with a BCa bootstrap 95 % CI; a Wilcoxon signed-rank p-value only from "
           f"{MIN_PAIRS} pairs on; {_holm_sentence(comparisons)}; "
           "significant only after adjustment; pairs with a collapsed cell left out.", "",
           "| task | model | strategy | N | metric | pairs | collapsed pairs | mean diff | 95 % CI | "
           "Wilcoxon p | Holm p | significant |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    md += _comparison_rows(comparisons)
    md += ["", SECTIONS[4], "",
           "Device hours of training + evaluating each strategy's cells (measured wall time).", "",
           "| strategy | CPU h | GPU h |", "|---|---|---|"]
    for s, h in cost["strategies"].items():
        md.append(f"| {s} | {h.get('CPU', 0):.3g} | {h.get('GPU', 0):.3g} |")
    g = cost["generation"]
    md += ["", f"Generation (training the per-fold generators and sampling the synthetic sets, "
               f"shared by {', '.join(synthetic_names) or 'no strategy'}): CPU "
               f"{g.get('CPU', 0):.3g} h, GPU {g.get('GPU', 0):.3g} h.", ""]
    md += [SECTIONS[5], "", verdicts[0], ""] + verdicts[1:] + [""]
    command = io.provenance()
    md += ["---", f"Command: `{command['command']}` at git commit {command['git_commit']}.", ""]

    results_json = {
        "config": asdict(config), "fingerprint": config.fingerprint(),
        "dataset": {"path": config.data, "synthetic": ds.synthetic, "source": ds.meta.get("source")},
        "leakage": leak, "generators": list(gens.values()), "aggregates": rows,
        "comparisons": [c.to_dict() for c in comparisons],
        "costs": cost, "verdicts": verdicts, "figures": figures,
        "cells": [{k: r[k] for k in ("id", "cell", "metrics", "samples", "fit", "eval_seconds",
                                     "device", "synthetic_classes")} for r in results],
        "provenance": command,
    }
    io.write_json(out / "results.json", results_json)
    io.write_json(out / "summary.json", summary_json(comparisons, metric_names[0], overall, rows))
    io.write_text(out / "report.md", "\n".join(md))
    io.write_command(out, command)
    return {"report": str(out / "report.md"), "results": str(out / "results.json"),
            "figures": figures}


def _holm_sentence(comparisons: list[Comparison]) -> str:
    tested = sum(c.p_value is not None for c in comparisons)
    if tested == len(comparisons):
        return f"Holm's adjustment across all {len(comparisons)} comparisons"
    zero = sum(identically_zero(c) for c in comparisons)
    return (f"Holm's adjustment across the {tested} comparisons with a p-value ({zero} identically "
            f"zero over all pairs, reported and not tested; {len(comparisons) - tested - zero} with "
            f"fewer than {MIN_PAIRS} pairs)")


def _comparison_rows(comparisons: list[Comparison]) -> list[str]:
    return [f"| {c.task} | {c.model} | {c.strategy} | {c.n_synthetic or '-'} | {c.metric} | {c.n_pairs} | "
            f"{c.collapsed_pairs} | {c.mean_diff:+.3f} | "
            + (f"[{c.ci95[0]:+.3f}, {c.ci95[1]:+.3f}]" if c.ci95 else "-")
            + f" | {_p(c.p_value)} | {_p(c.p_holm)} | {'yes' if c.significant else 'no'} |"
            for c in comparisons]


def _column(result: dict[str, Any]) -> str:
    return get_task(result["cell"]["task"]).column


# ----------------------------------------------------------------------------- committed folders

def recompute(results: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Comparison]]:
    """The aggregates and paired comparisons recomputed from results.json's per-cell scores alone
    (a cell of a classical floor is a floor by its model name)."""
    cells = [{**r, "floor": r["cell"]["model"] in FLOORS} for r in results["cells"]]
    metrics = list(results["config"]["metrics"])
    units = units_table(cells, metrics)
    return aggregate(cells, metrics), compare(units, metrics) if len(units) else []


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (relative) and NaN equal to NaN, through nested dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and bool(np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))
    return a == b


def problems(folder: Path) -> list[str]:
    """What in `folder` disagrees with its per-cell scores (empty: all agree): the stored
    aggregates and comparisons against ones recomputed from the cells, summary.json and the
    verdicts against the rule, and every row of the README's tables against the recomputed ones."""
    results = io.read_json(folder / "results.json")
    summary, overall = summarise(results)
    readme = (folder / "README.md").read_text()
    out = []
    rows, comparisons = recompute(results)
    if not _same(rows, results["aggregates"]):
        out.append("results.json's aggregates differ from the ones recomputed from its cells")
    if not _same([c.to_dict() for c in comparisons], results["comparisons"]):
        out.append("results.json's comparisons differ from the ones recomputed from its cells")
    metrics = list(results["config"]["metrics"])
    pairs = dict.fromkeys((r["task"], r["model"]) for r in rows if not r["floor"])
    table_rows = [line for t, m in pairs for line in _table(rows, t, m, metrics)[2:]]
    table_rows += _comparison_rows(comparisons) + [_holm_sentence(comparisons)]
    out += [f"README.md lacks the table row {line[:70]!r}..." for line in table_rows if line not in readme]
    if io.read_json(folder / "summary.json") != summary:
        out.append("summary.json differs from the one generated from results.json")
    if results["verdicts"][0] != overall:
        out.append("results.json's overall verdict differs from the one generated from its comparisons")
    out += [f"README.md lacks the verdict {v[:60]!r}..." for v in results["verdicts"] if v not in readme]
    return out


def refresh(folder: Path) -> None:
    """Rewrite results.json's comparisons and verdicts, summary.json, and the README's comparison
    rows, Holm sentence and verdicts, recomputed from the per-cell scores by the current rule."""
    results = io.read_json(folder / "results.json")
    readme = (folder / "README.md").read_text()
    rows, comparisons = recompute(results)
    old_comparisons = [Comparison(**{**c, "ci95": tuple(c["ci95"]) if c["ci95"] else None})
                       for c in results["comparisons"]]
    replacements = list(zip(_comparison_rows(old_comparisons), _comparison_rows(comparisons)))
    replacements.append((_holm_sentence(old_comparisons), _holm_sentence(comparisons)))
    results["comparisons"] = [c.to_dict() for c in comparisons]
    summary, overall = summarise(results)
    new_verdicts = [overall] + [f"- {verdict(c)}" for c in comparisons]
    replacements += list(zip(results["verdicts"], new_verdicts, strict=True))
    for old, new in replacements:
        if old not in readme:
            raise SystemExit(f"{folder}/README.md: {old[:60]!r}... is not the text results.json generates")
        readme = readme.replace(old, new)
    results["verdicts"], results["aggregates"] = new_verdicts, rows
    io.write_json(folder / "results.json", results)
    io.write_json(folder / "summary.json", summary)
    io.write_text(folder / "README.md", readme)
