"""The ablation report: report.md, results.json, command.txt and figures/*.png.

For every (task, model): each strategy's metrics as mean ± std over its cells (seeds x folds, and
synthetic sets for the N strategies); metric-vs-N plots with ± std bands; a paired test of each
strategy against "none" over the same (seed, fold) units (synthetic sets averaged within a unit
first): paired t-test and Wilcoxon signed-rank (scipy); the device hours each strategy cost; and a
verdict computed from those numbers (significance level 0.05 on the paired t-test).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from forecasting.augment import get_strategy  # noqa: E402
from forecasting.tasks import get_task  # noqa: E402
from solargen import io  # noqa: E402
from solargen.data.dataset import load_dataset  # noqa: E402
from solargen.data.splits import load_folds  # noqa: E402

ALPHA = 0.05
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


def _units(results: list[dict[str, Any]], task: str, model: str, strategy: str, n: int,
           metric: str) -> dict[tuple, float]:
    """(seed, fold) -> metric, averaged over synthetic sets."""
    per: dict[tuple, list[float]] = defaultdict(list)
    for r in results:
        c = r["cell"]
        if (c["task"], c["model"], c["strategy"], c["n"]) == (task, model, strategy, n):
            per[(c["seed"], c["fold"])].append(r["metrics"].get(metric, float("nan")))
    return {u: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            for u, v in per.items()}


def paired_tests(results: list[dict[str, Any]], rows: list[dict[str, Any]],
                 metric_names: list[str]) -> list[dict[str, Any]]:
    """Each (strategy, N) against 'none' of the same task and model, paired over (seed, fold)."""
    tests = []
    for row in rows:
        if row["strategy"] == "none":
            continue
        for m in metric_names:
            base = _units(results, row["task"], row["model"], "none", 0, m)
            mine = _units(results, row["task"], row["model"], row["strategy"], row["n"], m)
            units = sorted(u for u in set(base) & set(mine)
                           if np.isfinite(base[u]) and np.isfinite(mine[u]))
            a = np.array([mine[u] for u in units])
            b = np.array([base[u] for u in units])
            diff = a - b
            t_p = w_p = float("nan")
            if len(units) >= 2 and np.any(diff != 0):
                t_p = float(stats.ttest_rel(a, b).pvalue)
                w_p = float(stats.wilcoxon(a, b).pvalue)
            tests.append({"task": row["task"], "model": row["model"], "strategy": row["strategy"],
                          "n": row["n"], "metric": m, "pairs": len(units),
                          "mean_diff": float(diff.mean()) if len(units) else float("nan"),
                          "t_p": t_p, "wilcoxon_p": w_p})
    return tests


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


def _verdict_line(tests: list[dict], rows: list[dict], task: str, model: str, metric: str,
                  synthetic_names: list[str]) -> tuple[str, str]:
    """(outcome, sentence); outcome is helps / no-gain / hurts / untestable / n/a."""
    base = next((r for r in rows if (r["task"], r["model"], r["strategy"]) == (task, model, "none")),
                None)
    if base is None or base[metric]["count"] == 0:
        return "n/a", (f"- **{task} / {model} / {metric}**: no baseline value (metric undefined "
                       "on the test data).")
    mine = [t for t in tests if (t["task"], t["model"], t["metric"]) == (task, model, metric)]
    syn = [t for t in mine if t["strategy"] in synthetic_names and np.isfinite(t["mean_diff"])]
    head = (f"- **{task} / {model} / {metric}** (none: {base[metric]['mean']:.3f} ± "
            f"{base[metric]['std']:.3f}): ")
    if not syn:
        return "n/a", head + "no synthetic-strategy cell to compare."
    helps = [t for t in syn if t["mean_diff"] > 0 and t["t_p"] < ALPHA]
    hurts = [t for t in syn if t["mean_diff"] < 0 and t["t_p"] < ALPHA]
    best = max(syn, key=lambda t: t["mean_diff"])

    def where(ts: list[dict]) -> str:
        return ", ".join(f"{_label(t['strategy'], t['n'])} ({t['mean_diff']:+.3f}, "
                         f"p={_p(t['t_p'])})" for t in ts)

    if helps:
        outcome, text = "helps", f"synthetic data helps significantly at {where(helps)}"
    elif all(t["pairs"] < 2 for t in syn):
        outcome, text = "untestable", (f"not testable ({best['pairs']} seed x fold pair); the best synthetic setting, "
                f"{_label(best['strategy'], best['n'])}, changes it by {best['mean_diff']:+.3f}")
    else:
        outcome = "hurts" if hurts else "no-gain"
        text = (f"no significant improvement from synthetic data (negative result); the best "
                f"setting, {_label(best['strategy'], best['n'])}, changes it by "
                f"{best['mean_diff']:+.3f} (p={_p(best['t_p'])}, {best['pairs']} pairs)")
    if hurts:
        text += f"; it is significantly worse at {where(hurts)}"
    others = [t for t in mine if t["strategy"] not in synthetic_names and t["strategy"] != "none"
              and np.isfinite(t["mean_diff"])]
    if others:
        top = max(others, key=lambda t: t["mean_diff"])
        text += (f". Best non-synthetic remedy: {_label(top['strategy'], top['n'])} "
                 f"({top['mean_diff']:+.3f}, p={_p(top['t_p'])}), which the best synthetic "
                 f"setting {'beats' if best['mean_diff'] > top['mean_diff'] else 'does not beat'}")
    return outcome, head + text + "."


def _overall(outcomes: list[str], n_tests: int) -> str:
    counted = {k: outcomes.count(k) for k in ("helps", "no-gain", "hurts", "untestable", "n/a")}
    total = len(outcomes)
    if counted["untestable"] == total:
        head = ("Overall: not testable — every comparison has a single seed x fold pair; run more "
                "seeds or folds for a verdict.")
    elif counted["helps"] == 0:
        head = (f"Overall: a negative result — synthetic minority frames gave no significant gain "
                f"in any of the {total} task/model/metric combinations")
        head += (f" and made {counted['hurts']} significantly worse." if counted["hurts"] else ".")
    else:
        head = (f"Overall: synthetic minority frames helped significantly in {counted['helps']} of "
                f"{total} task/model/metric combinations, gave no significant gain in "
                f"{counted['no-gain'] + counted['hurts']} (significantly worse somewhere in "
                f"{counted['hurts']}).")
    return (head + f" The {n_tests} paired tests are not corrected for multiple comparisons: at "
            f"p < {ALPHA} about {ALPHA * n_tests:.1f} of them would pass by chance alone.")


def _figure(results: list[dict], rows: list[dict], task: str, model: str, metric: str,
            path: Path) -> Path:
    """Metric against N: N strategies as lines with ± std bands (over seeds, folds and sets);
    the others as horizontal bands; the task's classical floors as grey dotted lines."""
    mine = [r for r in rows if (r["task"], r["model"]) == (task, model) and r[metric]["count"]]
    ns = sorted({r["n"] for r in mine if r["n"]}) or [0, 1]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, strategy in enumerate(dict.fromkeys(r["strategy"] for r in mine)):
        pts = sorted((r["n"], r[metric]["mean"], r[metric]["std"]) for r in mine
                     if r["strategy"] == strategy)
        colour = colours[i % len(colours)]
        if get_strategy(strategy).uses_n:
            x, m, s = (np.array(v, dtype=float) for v in zip(*pts))
            ax.plot(x, m, "o-", color=colour, label=strategy)
            ax.fill_between(x, m - s, m + s, color=colour, alpha=0.2)
        else:
            _, m, s = pts[0]
            ax.axhline(m, color=colour, ls="--", label=strategy)
            ax.axhspan(m - s, m + s, color=colour, alpha=0.1)
    for r in rows:
        if r["task"] == task and r["floor"] and r[metric]["count"]:
            ax.axhline(r[metric]["mean"], color="0.5", ls=":", label=f"floor: {r['model']}")
    ax.set_xlabel("synthetic / copied samples per minority class (N)")
    ax.set_ylabel(metric)
    if len(ns) > 1:
        ax.set_xlim(min(ns), max(ns))
    ax.set_title(f"{task} / {model}: {metric} (mean ± std)", fontsize=10)
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


def _p(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3g}"


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
    tests = paired_tests(results, rows, metric_names)
    cost = costs(results, generation)
    ds = load_dataset(config.data)
    folds = load_folds(config.folds)
    pairs = list(dict.fromkeys((r["cell"]["task"], r["cell"]["model"]) for r in results
                               if not r.get("floor")))
    synthetic_names = [s for s in config.strategies if get_strategy(s).synthetic]
    figures = [str(_figure(results, rows, t, m, metric, out / "figures" / f"{t}-{m}-{metric}.png")
                   .relative_to(out)) for t, m in pairs for metric in metric_names]
    judged = [_verdict_line(tests, rows, t, m, metric, synthetic_names)
              for t, m in pairs for metric in metric_names]
    testable = [x for x in tests if np.isfinite(x["t_p"])]
    verdicts = [_overall([o for o, _ in judged], len(testable))] + [line for _, line in judged]
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
           f"Paired over the same (seed, fold) units; synthetic sets averaged within a unit. "
           f"Two-sided paired t-test and Wilcoxon signed-rank; significant at p < {ALPHA}.", "",
           "| task | model | strategy | N | metric | pairs | mean diff | t-test p | Wilcoxon p |",
           "|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {x['task']} | {x['model']} | {x['strategy']} | {x['n'] or '-'} | {x['metric']} | "
           f"{x['pairs']} | {x['mean_diff']:+.3f} | {_p(x['t_p'])} | {_p(x['wilcoxon_p'])} |"
           for x in tests]
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
        "leakage": leak, "generators": list(gens.values()), "aggregates": rows, "tests": tests,
        "costs": cost, "verdicts": verdicts, "figures": figures,
        "cells": [{k: r[k] for k in ("id", "cell", "metrics", "samples", "fit", "eval_seconds",
                                     "device", "synthetic_classes")} for r in results],
        "provenance": command,
    }
    io.write_json(out / "results.json", results_json)
    io.write_text(out / "report.md", "\n".join(md))
    io.write_text(out / "command.txt", f"{command['command']}\n{command['git_commit']}\n")
    return {"report": str(out / "report.md"), "results": str(out / "results.json"),
            "figures": figures}


def _column(result: dict[str, Any]) -> str:
    return get_task(result["cell"]["task"]).column
