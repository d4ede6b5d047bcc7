"""Which diffusion objective converges fastest at equal CPU time? Train one model per recipe for the
same number of steps (the steps the first recipe's speed probe fits in --minutes; every recipe has
the same UNet, so equal steps are equal CPU time), sample each with DPM-Solver++ 20 steps (and any
--samplers), and score Inception and domain FID against the same real reference.

    python bench/generator_recipes.py --bundle .gpu_bundle/aia171-f1-64 --minutes 10 \
        --results docs/results/<date>-generator-cpu/recipes

Recipes (solargen/diffusion/loss.py), everything else from configs/ddpm-64-class-cpu.yaml:
  paper            epsilon, linear betas, uniform weighting (Ho et al. 2020; the reference paper)
  eps-cosine-minsnr  epsilon, cosine schedule, min-SNR-5
  v-cosine-minsnr  v-prediction, cosine schedule, min-SNR-5 (the default)
  v-zsnr-minsnr    v-prediction, linear betas rescaled to zero terminal SNR, min-SNR-5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import gpu_run  # noqa: E402
from solargen import io  # noqa: E402

RECIPES = {
    "paper": ["objective.prediction_type=epsilon", "objective.beta_schedule=linear",
              "objective.loss_weighting=uniform"],
    "eps-cosine-minsnr": ["objective.prediction_type=epsilon", "objective.beta_schedule=squaredcos_cap_v2",
                          "objective.loss_weighting=min_snr"],
    "v-cosine-minsnr": ["objective.prediction_type=v_prediction", "objective.beta_schedule=squaredcos_cap_v2",
                        "objective.loss_weighting=min_snr"],
    "v-zsnr-minsnr": ["objective.prediction_type=v_prediction", "objective.beta_schedule=linear",
                      "objective.rescale_zero_terminal_snr=true", "objective.loss_weighting=min_snr"],
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--work", default="runs/generator-recipes")
    p.add_argument("--config", default="configs/ddpm-64-class-cpu.yaml")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--minutes", type=float, default=10.0, help="training time of each recipe")
    p.add_argument("--samplers", nargs="+", default=["dpm:20"])
    p.add_argument("--n", type=int, default=250)
    p.add_argument("--set", nargs="*", default=[], help="extra overrides for every recipe")
    p.add_argument("--encoder-epochs", type=int, default=10)
    args = p.parse_args(argv)
    work, results = Path(args.work), Path(args.results)
    steps = None
    summaries = {}
    for name in args.recipes:
        run_args = ["run", "--bundle", args.bundle, "--work", str(work / name), "--config", args.config,
                    "--speed-batch", "25", "--speed-samplers", "--n", str(args.n), "--n-sets", "1",
                    "--samplers", *args.samplers, "--set", *RECIPES[name], *args.set]
        if steps is None:
            run_args += ["--train-seconds", str(args.minutes * 60)]
        else:   # the same number of steps as the first recipe: equal CPU time for equal UNets
            run_args += ["--probe-steps", "2", "--min-steps", str(steps), "--train-seconds", "0"]
        if not (work / name / "run.json").is_file() or "finished" not in io.read_json(work / name / "run.json"):
            gpu_run.main(run_args)
        steps = steps or io.read_json(work / name / "run.json")["train"]["steps"]
        summaries[name] = gpu_run.main_score(work / name, results / name, args.bundle, args.encoder_epochs)
    table = {name: {"objective": s["objective"], "train_steps": s["train_steps"],
                    "train_minutes": s["train_minutes"], "final_loss": s["final_loss"],
                    "fid_inception": s["fid_inception"], "fid_domain": s["fid_domain"],
                    "saturated_fraction": s["saturated_fraction"]} for name, s in summaries.items()}
    first = next(iter(summaries.values()))
    out = {"recipes": table, "fid_floor_inception": first["fid_floor_inception"],
           "fid_floor_domain": first["fid_floor_domain"], "n": args.n, "command": io.command_line(),
           "git_commit": io.git_commit()}
    io.write_json(results / "recipes.json", out)
    gpu_run.plot_recipes(work, summaries, results / "recipes.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
