"""report.md of an evaluation run, written from its metrics dict (every number read from it)."""
from __future__ import annotations

from typing import Any

# The reference paper's Table 1 (64 x 64 AIA 171, 10 sets of N = 1000 per model), for comparison.
PAPER_TABLE1 = {
    "cluster error GT": ("0.00197", "0.00197"),
    "cluster distance GT": ("1.00104", "1.00104"),
    "cluster std GT": ("0.99816", "0.99816"),
    "cluster error GEN": ("0.1294 ± 0.0358", "1.5031 ± 0.1476"),
    "cluster distance GEN": ("0.9212 ± 0.0037", "0.9342 ± 0.0023"),
    "cluster std GEN": ("1.2107 ± 0.0037", "1.0976 ± 0.0023"),
    "FID InceptionV3": ("3.693", "2.703"),
    "macro-F1 ratio gen/real": ("0.70", "0.34"),
}


def _pm(d: dict) -> str:
    return f"{d['mean']:.4g} ± {d['std']:.2g}"


def render_report(r: dict[str, Any]) -> str:
    data, gen = r["data"], r["generated"]
    synthetic = data["synthetic_real"] or data["synthetic_training"]
    n = gen["set_size"]
    lines = ["# Generative evaluation", ""]
    if synthetic:
        lines += ["> **SYNTHETIC DATA.** The real set or the generator's training data is the embedded "
                  "synthetic default, not solar observations: these numbers test the machinery and say "
                  "nothing about solar images.", ""]
    lines += [f"- Real data: {data['real']}", f"- Fold {data['fold']} of `{data['folds_file']}`: "
              f"{data['n_train']} training frames ({data['n_labelled_train']} with a `{data['label_column']}` "
              f"label: {data['train_class_counts']}), {data['n_heldout']} held-out (val + test) frames.",
              f"- Generated: `{gen['source']}`" + (f" (sampled from `{gen['model_dir']}`)" if gen["model_dir"] else "")
              + f", {gen['n']} frames, classes {gen['class_counts']}; "
              f"{gen['n_sets']} disjoint sets of N = {n} ({gen['class_mix']}).",
              f"- Command: `{r['provenance']['command']}` at commit {r['provenance']['git_commit']}", ""]
    lines += ["## FID (lower is better)", "",
              f"Reference: N = {n} labelled real training frames. Floor: a disjoint real set of the same N.", "",
              "| view | feature space | N | generated (mean ± std over sets) | sets | real-vs-real floor |",
              "|---|---|---|---|---|---|"]
    for name, s in r["fid"].items():
        lines.append(f"| {name} | {s['feature_description']} | {s['n']} | {_pm(s)} | {s['n_sets']} | "
                     f"{s['floor_real_vs_real']:.4g} |")
    c = r["clusters"]
    lines += ["", f"## Cluster metrics (K = {c['k']}, {c['feature_description']})", "",
              f"KMeans fitted on the N = {c['n']} real reference latents; GT = a disjoint real set of the "
              f"same N; GEN = mean ± std over {c['n_sets']} generated sets. Ideal: 0, 1, 1.", "",
              "| row | cluster error | cluster distance | cluster std |", "|---|---|---|---|",
              f"| GT (real, N={c['n']}) | {c['gt']['cluster_error']:.4g} | {c['gt']['cluster_distance']:.4g} | "
              f"{c['gt']['cluster_std']:.4g} |",
              f"| GEN (N={c['n']}) | {_pm(c['cluster_error'])} | {_pm(c['cluster_distance'])} | "
              f"{_pm(c['cluster_std'])} |", ""]
    f = r["fidelity"]
    lines += ["## Classifier fidelity", ""]
    if "skipped" in f:
        lines += [f"Skipped: {f['skipped']}.", ""]
    else:
        lines += [f"A small CNN trained on the {r['training']['classifier']['n_frames']} labelled training "
                  f"frames; scored on {f['n_real']} held-out real frames and {f['n_generated']} class-balanced "
                  f"generated frames ({f['per_class_generated']} per class). Macro over {f['shared_classes']}."
                  + (f" Held-out frames of classes absent from training, left out: "
                     f"{f['heldout_classes_not_in_training']}." if f["heldout_classes_not_in_training"] else ""), "",
                  "| class | real P | real R | real F1 (support) | gen P | gen R | gen F1 (support) |",
                  "|---|---|---|---|---|---|---|"]
        for cls in f["classes"]:
            a, b = f["real"]["per_class"][cls], f["generated"]["per_class"][cls]
            lines.append(f"| {cls} | {a['precision']:.3f} | {a['recall']:.3f} | {a['f1']:.3f} ({a['support']}) | "
                         f"{b['precision']:.3f} | {b['recall']:.3f} | {b['f1']:.3f} ({b['support']}) |")
        ma, mb = f["real"]["macro"], f["generated"]["macro"]
        lines += [f"| **macro** | {ma['precision']:.3f} | {ma['recall']:.3f} | {ma['f1']:.3f} | "
                  f"{mb['precision']:.3f} | {mb['recall']:.3f} | {mb['f1']:.3f} |", "",
                  f"**macro-F1(generated) / macro-F1(real) = {f['macro_f1_ratio']:.3f}**", "",
                  "Figures: `figures/std_maps.png` (per-class pixel std, real beside generated), "
                  "`figures/montage.png`.", ""]
    lines += ["## Novelty (nearest training frame)", ""]
    for s in r["novelty"]:
        lines.append(f"- {s['verdict']} (N generated {s['n_generated']}, N held-out {s['n_heldout']}, "
                     f"N train {s['n_train']})")
    lines += ["", "Figure: `figures/novelty.png`.", "", "## Conditioning faithfulness (X-ray flux)", ""]
    fa = r["faithfulness"]
    if "skipped" in fa:
        lines += [f"Skipped: {fa['skipped']}.", ""]
    else:
        lines += [f"Flux regressor trained on {r['training']['flux_regressor']['n_frames']} real training frames "
                  f"(`{data['flux_column']}`). Spearman(requested, read) on {fa['n_generated']} generated frames: "
                  f"**{fa['spearman_generated']:.3f}**; the regressor's own Spearman on {fa['n_real']} held-out "
                  f"real frames: {fa['spearman_real']:.3f}. Figure: `figures/faithfulness.png`.", ""]
    if "consistency" in r:
        cs = r["consistency"]
        lines += ["## Cross-channel consistency", "",
                  f"Spearman correlation of each channel's brightening (99.5th percentile minus median) with "
                  f"the {cs['condition']} a frame stands for: {cs['n_real']} held-out real frames (their "
                  f"GOES flux) and {cs['n_generated']} generated frames (the requested condition).", "",
                  "| channel | real | generated |", "|---|---|---|"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        for ch, v in cs["channels"].items():
            lines.append(f"| {ch} | {fmt(v['spearman_real'])} | {fmt(v['spearman_generated'])} |")
        lines.append("")
    lines += ["## Beside the reference paper's Table 1", "",
              "| metric | paper discrete | paper continuous | this run |", "|---|---|---|---|"]
    ours = {"cluster error GT": f"{c['gt']['cluster_error']:.4g}",
            "cluster distance GT": f"{c['gt']['cluster_distance']:.4g}",
            "cluster std GT": f"{c['gt']['cluster_std']:.4g}",
            "cluster error GEN": _pm(c["cluster_error"]), "cluster distance GEN": _pm(c["cluster_distance"]),
            "cluster std GEN": _pm(c["cluster_std"]),
            "FID InceptionV3": (_pm(r["fid"]["inception"]) if "inception" in r["fid"] else
                                ", ".join(f"{k}: {_pm(v)}" for k, v in r["fid"].items() if k.startswith("inception-"))
                                or "not computed"),
            "macro-F1 ratio gen/real": f"{f['macro_f1_ratio']:.3f}" if "skipped" not in f else "n/a"}
    for key, (disc, cont) in PAPER_TABLE1.items():
        lines.append(f"| {key} | {disc} | {cont} | {ours[key]} |")
    lines += ["", "Not comparable as such: the paper used N = 1000 per set and 10 sets, SDO data from "
              "other years with an A class, a 512-d ceVAE latent for the clusters and a DeiT classifier "
              f"for F1; this run uses N = {n}, {gen['n_sets']} sets, classes {list(data['train_class_counts'])} "
              f"from `{data['label_column']}`, a {r['clusters']['feature_description']} and a small CNN "
              "classifier. FID and the GT row shrink with N.", ""]
    return "\n".join(lines)
