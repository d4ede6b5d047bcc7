"""docs/results/<date>-generator-cpu/: summary.json and a README written from the JSON of its parts.

    python bench/generator_report.py --results docs/results/2026-12-04-generator-cpu \
        --gpu docs/results/2026-12-04-gpu

Parts (each written by its own bench command, recorded in its command.txt):
  recipes/recipes.json           bench/generator_recipes.py: objectives at equal CPU steps
  default/summary.json           bench/gpu_run.py run + score on the CPU: the default recipe, sampler table
  conditioning/conditioning.json bench/conditioning.py score: is the requested class / flux visible
and, optionally, the one-GPU run's summary.json (--gpu).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conditioning import CONDITIONING_NAMES, conditioning_lines  # noqa: E402  (bench/ is this script's directory)
from solargen import io  # noqa: E402


def build_summary(results: Path, gpu: Path | None) -> dict:
    default = io.read_json(results / "default" / "summary.json")
    recipes = io.read_json(results / "recipes" / "recipes.json")
    cond_file = results / "conditioning" / "conditioning.json"
    conditioning = io.read_json(cond_file) if cond_file.is_file() else None
    rename = lambda d: {k.replace(":", "-"): v for k, v in d.items()}  # noqa: E731
    summary = {
        "data": default["data"],
        "fid_inception": rename(default["fid_inception"]), "fid_floor_inception": default["fid_floor_inception"],
        "fid_domain": rename(default["fid_domain"]), "fid_floor_domain": default["fid_floor_domain"],
        "train_minutes": default["train_minutes"], "train_steps": default["train_steps"],
        "epochs": default["epochs"], "model_size": default["model_size"], "objective": default["objective"],
        "n_per_set": default["n_per_set"], "n_sets": default["n_sets"],
        "sampling_img_per_s": rename(default["sampling_img_per_s"]),
        "saturated_fraction": rename(default["saturated_fraction"]),
        "checks": default["checks"],
        "recipes": recipes["recipes"], "recipe_n": recipes["n"],
        "recipe_fid_floor_inception": recipes["fid_floor_inception"],
        "recipe_fid_floor_domain": recipes["fid_floor_domain"],
        "conditioning": conditioning,
    }
    best = min(recipes["recipes"], key=lambda k: recipes["recipes"][k]["fid_inception"]["dpm:20"])
    summary["best_recipe_inception"] = best
    if gpu is not None:
        g = io.read_json(gpu / "summary.json")
        summary["gpu"] = {"device": g["device"], "train_img_per_s": g["train_img_per_s"],
                          "sampling_img_per_s": g["sampling_img_per_s"],
                          "fid_inception": g["fid_inception"], "fid_floor_inception": g["fid_floor_inception"],
                          "fid_domain": g["fid_domain"], "fid_floor_domain": g["fid_floor_domain"],
                          "epochs": g["epochs"], "results": str(gpu)}
    return summary


def render(s: dict) -> str:
    fi, ff = s["fid_inception"], s["fid_floor_inception"]
    fd, fdf = s["fid_domain"], s["fid_floor_domain"]
    ratio = fi["dpm-20"] / fi["ddpm-250"] if "ddpm-250" in fi else None
    ratio_domain = fd["dpm-20"] / fd["ddpm-250"] if "ddpm-250" in fd else None
    lines = ["# Generator on a 2-core CPU: objective, samplers, conditioning", "",
             f"Real data: {s['data']['description']} (the training window of fold f1, labels "
             f"`{s['data']['label_column']}`). Every number below is read from summary.json, which "
             "collects the JSON of the three parts (commands in each part's command.txt).", "",
             "## Which objective converges fastest at equal CPU time", "",
             f"Each recipe trained the same XS UNet for the same number of steps (the steps the first "
             f"recipe's speed probe fitted in 10 minutes), sampled with DPM-Solver++ 20 steps, one set of "
             f"N = {s['recipe_n']} against a real reference of the same N "
             f"(real-vs-real floor: Inception {s['recipe_fid_floor_inception']:.2f}, domain "
             f"{s['recipe_fid_floor_domain']:.3f}).", "",
             "| recipe | prediction | schedule | weighting | steps | minutes (wall) | Inception FID | domain FID | saturated px |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in s["recipes"].items():
        o = r["objective"]
        sched = o["beta_schedule"] + (" (zero terminal SNR)" if o["rescale_zero_terminal_snr"] else "")
        lines.append(f"| {name} | {o['prediction_type']} | {sched} | {o['loss_weighting']} | {r['train_steps']} | "
                     f"{r['train_minutes']:.1f} | {r['fid_inception']['dpm:20']:.2f} | {r['fid_domain']['dpm:20']:.3f} | "
                     f"{r['saturated_fraction']['dpm:20']:.2%} |")
    fids = sorted((r["fid_inception"]["dpm:20"], name) for name, r in s["recipes"].items())
    (best_fid, best), (second_fid, second) = fids[0], fids[1]
    gap = (second_fid - best_fid) / best_fid
    keys = ("prediction_type", "beta_schedule", "rescale_zero_terminal_snr", "loss_weighting")
    default = next((name for name, r in s["recipes"].items()
                    if all(r["objective"][k] == s["objective"][k] for k in keys)), None)
    if default in (best, second) and default != best:
        stance = f" the default ({default}) stays"
    elif default == best:
        stance = f" the default ({default}) is the lowest"
    else:
        stance = f" the default ({default or 'not among the recipes'}) is neither of the two"
    tie = (f" {second} is within {gap:.2%} of it, a difference one set of N = {s['recipe_n']} cannot "
           f"resolve;{stance}." if gap < 0.05 else "")
    lines += ["", f"Lowest Inception FID: **{best}** ({best_fid:.2f}).{tie} The wall minutes include other jobs "
              "sharing the 2 cores; the steps are what is equal. Figure: `recipes/recipes.png` (loss curves, "
              "each divided by its first logged value, and FID / floor).", "",
              "## The default recipe, trained for at most an hour", "",
              f"{s['objective']['prediction_type']}, {s['objective']['beta_schedule']}, "
              f"{s['objective']['loss_weighting']} (gamma {s['objective']['snr_gamma']:g}), EMA; UNet "
              f"{s['model_size']}, {s['train_steps']} steps ({s['epochs']:.0f} epochs) in "
              f"{s['train_minutes']:.1f} minutes. {s['n_sets']} sets of N = {s['n_per_set']} per sampler, "
              "the same seeds and classes for every sampler.", "",
              "| sampler | Inception FID | domain FID | saturated px |", "|---|---|---|---|"]
    for spec in fi:
        lines.append(f"| {spec} | {fi[spec]:.2f} | {fd.get(spec, float('nan')):.3f} | "
                     f"{s['saturated_fraction'].get(spec, float('nan')):.2%} |")
    lines += [f"| real-vs-real floor | {ff:.2f} | {fdf:.3f} | {s['saturated_fraction']['real']:.2%} (real) |", ""]
    for name, r in (("Inception", ratio), ("domain", ratio_domain)):
        if r is not None:
            lines.append(f"- DPM-20 / DDPM-250 {name} FID: {r:.2f} (target <= 1.10: "
                         f"{'met' if r <= 1.10 else 'missed'}).")
    best = min(fi, key=fi.get)
    lines.append(f"- Best Inception FID {fi[best]:.2f} ({best}) is {fi[best] / ff:.1f}x the real floor "
                 f"(target <= 3x: {'met' if fi[best] <= 3 * ff else 'missed'}).")
    for spec, rate in s["sampling_img_per_s"].items():
        lines.append(f"- Sampling {spec} on the CPU: {rate:.1f} img/s (guidance 1).")
    lines += ["", "Figures: `default/samples.png` (the same seeds per sampler, real frames on top), "
              "`default/loss.png`.", ""]
    c = s["conditioning"]
    if c is None:
        lines += ["## Is the conditioning visible", "",
                  "Not measured in this round: the class, flux, class + flux and class + latent models "
                  "trained on the GPU were not kept, and training four models on this CPU did not fit. "
                  "`bench/conditioning.py models` (a GPU) then `bench/conditioning.py score` (any "
                  "machine) measure it."]
    else:
        lines += conditioning_lines(c)
        missing = [CONDITIONING_NAMES[k] for k in CONDITIONING_NAMES if k not in c["models"]]
        if missing:
            lines += ["", f"Not measured in this round: {', '.join(missing)} (the GPU-trained models "
                          "were not kept; `bench/conditioning.py models` on a GPU, then `score`)."]
    if "gpu" in s:
        g = s["gpu"]
        gi, gd = g["fid_inception"], g["fid_domain"]
        lines += ["", "## On one GPU", "",
                  f"The same code on an {g['device']} ({g['results']}): {g['train_img_per_s']:.0f} img/s training, "
                  f"{g['epochs']:.0f} epochs in minutes, DPM-20 Inception FID {gi['dpm:20']:.2f} "
                  f"against a floor of {g['fid_floor_inception']:.2f}."]
        if "ddpm:250" in gi:
            lines.append(f"DPM-20 / DDPM-250 there: Inception {gi['dpm:20'] / gi['ddpm:250']:.2f}, domain "
                         f"{gd['dpm:20'] / gd['ddpm:250']:.2f} (floor {g['fid_floor_domain']:.2f}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True)
    p.add_argument("--gpu", help="a one-GPU results folder (bench/gpu_run.sh)")
    args = p.parse_args(argv)
    results = Path(args.results)
    summary = build_summary(results, Path(args.gpu) if args.gpu else None)
    io.write_json(results / "summary.json", summary)
    io.write_text(results / "README.md", render(summary))
    io.write_command(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
