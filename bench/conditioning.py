"""Is the conditioning visible? Train one model per conditioning kind, sample class- and
flux-balanced sets, and read them back with networks trained on real frames only.

    python bench/conditioning.py models --bundle .gpu_bundle/aia171-f1-64 --work runs/cond \
        --kinds class_latent flux both --steps 500          # the part worth a GPU
    python bench/conditioning.py score --bundle .gpu_bundle/aia171-f1-64 \
        --model class=runs/gpu/pipeline flux=runs/cond/flux ... --results docs/results/<date>-conditioning \
        [--work runs/cond]          # with --work: its models.json is copied and a README written

`models` trains each kind with the project trainer (configs/ddpm-64-class-gpu.yaml unless --config,
compile off) and draws, per model, --per-class images of every known class with DPM-Solver++
(class and class+latent models: the class is requested; flux and class+flux models: fluxes
log-uniform over each class's training decade). Writes samples-<kind>.npz and pipeline-<kind>.tar.

`score` samples each given model (every class with the same seeds), trains the fidelity classifier
(GOES class) and the flux regressor on the bundle's real training frames, then reports per model how
often the classifier returns the requested class (against chance = 1 / number of classes, and
against its recall on real frames of the same classes), for flux models the Spearman correlation
between requested and read flux, and the mean same-seed difference between classes; a sample grid
per model (every class on the same seeds, real frames of the class first) under figures/.
"""
from __future__ import annotations

import argparse
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solargen import io  # noqa: E402
from solargen.data.dataset import from_uint8, load_dataset, to_uint8  # noqa: E402
from solargen.data.goes import GOES_CLASSES  # noqa: E402

DECADE = {c: -8.0 + i for i, c in enumerate(GOES_CLASSES)}   # log10 flux at the bottom of a class
CONDITIONING_NAMES = {"class": "class only", "flux": "flux only", "both": "class + flux",
                      "class_latent": "class + latent"}
GRID_SEEDS, GRID_REAL = 6, 3                  # per class in the figures: generated seeds, real frames


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def requested_conditions(pipe, letter: str, per_class: int, seed: int) -> dict[str, list]:
    """per_class images of one class; flux models get fluxes log-uniform in the class's decade."""
    if not pipe.conditioning.uses_flux:
        return {"flare_class": [letter] * per_class}
    rng = np.random.default_rng(seed)
    return {"goes_flux": [float(10 ** (DECADE[letter] + u)) for u in rng.uniform(0.0, 0.999, per_class)]}


def draw(pipe, per_class: int, steps: int, batch: int, device: torch.device) -> dict[str, np.ndarray]:
    """per_class images of every known class, each class with the SAME seeds 0..per_class-1, so
    that images i of two classes differ only by their condition."""
    from solargen.data.goes import letters_from_flux
    from solargen.diffusion.sample import sample_set
    images, letters, fluxes = [], [], []
    for letter in pipe.known_classes:
        conditions = requested_conditions(pipe, letter, per_class, seed=0)
        with _autocast(device):
            out = sample_set(pipe, seed=0, batch_size=batch, sampler="dpm", num_inference_steps=steps,
                             progress=False, **conditions)
        flux = np.asarray(conditions.get("goes_flux", [np.nan] * per_class), dtype=float)
        images.append(to_uint8(out["images"]))
        letters += (conditions["flare_class"] if "flare_class" in conditions
                    else list(letters_from_flux(flux).astype(str)))
        fluxes.append(flux)
    return {"images": np.concatenate(images), "flare_class": np.asarray(letters, dtype=str),
            "goes_flux": np.concatenate(fluxes), "seed": np.tile(np.arange(per_class), len(images))}


def same_seed_difference(s: dict[str, np.ndarray], base: str = "B") -> dict[str, float]:
    """Mean |image(class) - image(base)| in [-1, 1] units over pixels and seeds, for every other
    class drawn with the same seeds (how much the condition changes a sample)."""
    gen = from_uint8(s["images"])
    asked = s["flare_class"].astype(str)
    if "seed" not in s or base not in asked:
        return {}
    ref = {int(k): gen[i] for i, k in zip(np.flatnonzero(asked == base), s["seed"][asked == base])}
    out = {}
    for letter in sorted(set(asked) - {base}, key="ABCMX".index):
        rows = np.flatnonzero(asked == letter)
        diffs = [np.abs(gen[i] - ref[int(k)]).mean() for i, k in zip(rows, s["seed"][rows]) if int(k) in ref]
        if diffs:
            out[f"{letter}-{base}"] = float(np.mean(diffs))
    return out


def read_as(true: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, dict[str, int]]:
    """For each class of `names` that `true` holds, how often the classifier read it as each class
    (its row of the confusion matrix)."""
    from sklearn.metrics import confusion_matrix
    present = [c for c in names if (true == c).any()]
    if not present:
        return {}
    cm = confusion_matrix(true, pred, labels=names)
    return {c: dict(zip(names, cm[names.index(c)].tolist())) for c in present}


def models(args: argparse.Namespace) -> None:
    from solargen.diffusion.pipeline import SolarDiffusionPipeline
    from solargen.diffusion.run_config import load_config
    from solargen.diffusion.train import train
    work, scratch = Path(args.work), Path(args.scratch or Path(args.work) / "scratch")
    work.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    record = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
              "command": io.command_line(), "models": {}}
    if (work / "models.json").is_file():          # a rerun keeps the kinds already trained
        record["models"] = io.read_json(work / "models.json")["models"]
    for kind in args.kinds:
        if kind in record["models"] and record["models"][kind]["steps"] == args.steps:
            print(f"[conditioning] {kind}: already trained ({work / 'models.json'})", flush=True)
            continue
        cfg = load_config(args.config, [f"data.dataset={args.bundle}", f"train.conditioning={kind}",
                                        f"train.max_steps={args.steps}", "train.compile=false",
                                        f"output_dir={scratch / kind}", *args.set])
        tic = time.perf_counter()
        result = train(cfg, progress=False)
        seconds = time.perf_counter() - tic
        n_samples = 0
        if args.per_class:                        # 0: `score` samples the pipelines where they are
            pipe = SolarDiffusionPipeline.from_pretrained(result.pipeline_dir).to(device)
            pipe.set_progress_bar_config(disable=True)
            samples = draw(pipe, args.per_class, args.sample_steps, args.batch, device)
            n_samples = len(samples["images"])
            with io.atomic_path(work / f"samples-{kind}.npz") as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **samples)
        half = scratch / f"{kind}-fp16"
        SolarDiffusionPipeline.from_pretrained(result.pipeline_dir, torch_dtype=torch.float16).save_pretrained(half)
        with io.atomic_path(work / f"pipeline-{kind}.tar") as tmp, tarfile.open(tmp, "w") as tar:
            tar.add(half, arcname="pipeline")
        record["models"][kind] = {"steps": args.steps, "batch_size": cfg.train.batch_size,
                                  "train_seconds": round(seconds, 1), "final_loss": result.losses[max(result.losses)],
                                  "samples": n_samples, "sampler": f"dpm:{args.sample_steps}"}
        io.write_json(work / "models.json", record)
        print(f"[conditioning] {kind}: {args.steps} steps in {seconds:.0f} s; "
              f"{n_samples} samples", flush=True)


def score(args: argparse.Namespace) -> dict:
    from scipy.stats import spearmanr

    from eval.faithfulness import read_log_flux, train_flux_regressor
    from eval.fidelity import classify, train_classifier
    from solargen.diffusion.autoencoder import FitConfig
    from solargen.diffusion.pipeline import SolarDiffusionPipeline

    results = Path(args.results)
    ds = load_dataset(args.bundle)
    frames = np.asarray(ds.frames, dtype=np.float32)
    letters = ds.labels["goes_class"].fillna("").astype(str).to_numpy()
    flux = ds.labels["goes_flux"].to_numpy(dtype=float)
    keep = (letters != "") & np.isfinite(flux) & (flux > 0)
    # Train on the first 80 % of the window, check on the last 20 % (time-ordered, real frames only).
    cut = int(0.8 * keep.sum())
    idx = np.flatnonzero(keep)
    fit, held = idx[:cut], idx[cut:]
    names = [c for c in GOES_CLASSES if (letters[fit] == c).any()]
    fit_cfg = FitConfig(epochs=args.epochs, seed=0)
    classifier, _ = train_classifier(frames[fit], letters[fit], names, fit_cfg)
    regressor, _ = train_flux_regressor(frames[fit], flux[fit], fit_cfg)
    real_pred = np.asarray(classify(classifier, frames[held]))
    real_recall = {c: row[c] / sum(row.values())
                   for c, row in read_as(letters[held], real_pred, names).items()}
    real_rho = float(spearmanr(np.log10(flux[held]), read_log_flux(regressor, frames[held])).statistic)

    sets = {}
    for spec in args.model:                     # kind=pipeline_dir: sampled here, same seeds per class
        kind, _, path = spec.partition("=")
        pipe = SolarDiffusionPipeline.from_pretrained(path, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        sets[kind] = draw(pipe, args.per_class, args.sample_steps, 16, torch.device("cpu"))
    out = {"data": ds.describe(), "synthetic": ds.synthetic, "classifier_classes": names,
           "n_fit": int(len(fit)), "n_held_out_real": int(len(held)),
           "real_recall_per_class": real_recall, "real_spearman": real_rho,
           "chance": 1.0 / len(names), "models": {}}
    for kind, s in sets.items():
        gen = from_uint8(s["images"])
        pred = np.asarray(classify(classifier, gen))
        asked = s["flare_class"].astype(str)
        rows = read_as(asked, pred, names)
        m = {"n": int(len(gen)), "agreement": float(np.mean(pred == asked)),
             "agreement_per_class": {c: row[c] / sum(row.values()) for c, row in rows.items()},
             "read_as": rows, "same_seed_difference": same_seed_difference(s)}
        if np.isfinite(s["goes_flux"]).all():
            read = read_log_flux(regressor, gen)
            m["spearman_flux"] = float(spearmanr(np.log10(s["goes_flux"]), read).statistic)
        out["models"][kind] = m
        print(f"[conditioning] {kind}: requested class read back {m['agreement']:.2f} "
              f"(chance {out['chance']:.2f})" + (f", flux rho {m['spearman_flux']:.2f}"
                                                  if "spearman_flux" in m else ""), flush=True)
    out["figures"] = save_figures(sets, frames[idx], letters[idx], [str(c) for c in ds.channels], results)
    io.write_json(results / "conditioning.json", out)
    trained = None
    if args.work:
        trained = io.read_json(Path(args.work) / "models.json")
        io.write_json(results / "models.json", trained)
    io.write_text(results / "README.md", render(out, trained))
    return out


def conditioning_lines(c: dict) -> list[str]:
    """The README section of a conditioning.json."""
    lines = ["## Is the conditioning visible", "",
             f"A classifier (GOES class) and a flux regressor trained on {c['n_fit']} real training frames "
             f"read each model's samples; on {c['n_held_out_real']} later real frames the classifier's recall "
             f"per class is {', '.join(f'{k} {v:.2f}' for k, v in c['real_recall_per_class'].items())} and the "
             f"regressor's Spearman correlation {c['real_spearman']:.2f}. Chance agreement: {c['chance']:.2f}. "
             "Every class of a model is drawn with the same seeds, so the same-seed difference is what the "
             "condition alone changes (mean |x(class) - x(B)| in [-1, 1] units).", "",
             "| model | N | requested class read back | per class | Spearman(requested, read flux) | same-seed difference vs B |",
             "|---|---|---|---|---|---|"]
    for kind, m in c["models"].items():
        per = ", ".join(f"{k} {v:.2f}" for k, v in m["agreement_per_class"].items())
        rho = f"{m['spearman_flux']:.2f}" if "spearman_flux" in m else "-"
        diff = ", ".join(f"{k} {v:.3f}" for k, v in m.get("same_seed_difference", {}).items()) or "-"
        lines.append(f"| {CONDITIONING_NAMES.get(kind, kind)} | {m['n']} | {m['agreement']:.2f} | {per} | {rho} | {diff} |")
    flux_rhos = {k: m["spearman_flux"] for k, m in c["models"].items() if "spearman_flux" in m}
    if flux_rhos:
        lines += ["", "- Flux models' Spearman >= 0.5 (target): " + ", ".join(
            f"{CONDITIONING_NAMES.get(k, k)} {v:.2f} ({'met' if v >= 0.5 else 'missed'})" for k, v in flux_rhos.items())
            + f"; the same regressor on real held-out frames: {c['real_spearman']:.2f}."]
    return lines


def save_figures(sets: dict[str, dict], frames: np.ndarray, letters: np.ndarray, channels: list[str],
                 out: Path) -> dict[str, str]:
    """figures/samples-<kind>[-<channel>].png: each class on the first GRID_SEEDS seeds, after
    GRID_REAL real frames of that class (the first and, for several channels, the last channel)."""
    from solargen.diffusion.sample import save_grid
    written = {}
    for kind, s in sets.items():
        gen = from_uint8(s["images"])
        asked = s["flare_class"].astype(str)
        keep = np.flatnonzero(s["seed"] < GRID_SEEDS)
        real = {c: frames[np.flatnonzero(letters == c)[:GRID_REAL]] for c in dict.fromkeys(asked)}
        for ch in sorted({0, len(channels) - 1}):
            name = f"samples-{kind}" + (f"-{channels[ch]}" if len(channels) > 1 else "") + ".png"
            save_grid(gen[keep], list(asked[keep]), out / "figures" / name, real=real, channel=ch,
                      title=f"{CONDITIONING_NAMES.get(kind, kind)}: {channels[ch]} A, real frames first, "
                            "the same seeds in every row")
            written[f"{kind}-{channels[ch]}"] = f"figures/{name}"
    return written


def render(c: dict, trained: dict | None) -> str:
    """README.md of a conditioning results folder, from conditioning.json (and models.json)."""
    lines = ["# Conditioning kinds: is the requested class / flux visible", "", f"Data: {c['data']}.", ""]
    if trained:
        lines += [f"Models trained on {trained['device']}: " + "; ".join(
            f"{CONDITIONING_NAMES.get(k, k)} {m['steps']} steps of {m['batch_size']} in {m['train_seconds'] / 60:.1f} min"
            for k, m in trained["models"].items()) + ".", ""]
    lines += conditioning_lines(c)
    lines += ["", "Figures: " + ", ".join(f"`{p}`" for p in c.get("figures", {}).values()) + ".",
              "", "Commands and commit: `command.txt`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    m = sub.add_parser("models", help="train one model per kind and sample balanced sets")
    m.add_argument("--bundle", required=True)
    m.add_argument("--work", required=True)
    m.add_argument("--scratch")
    m.add_argument("--config", default="configs/ddpm-64-class-gpu.yaml")
    m.add_argument("--kinds", nargs="+", default=["class_latent", "flux", "both"])
    m.add_argument("--steps", type=int, default=500)
    m.add_argument("--set", nargs="*", default=[])
    m.add_argument("--per-class", type=int, default=100, help="0: draw no samples here")
    m.add_argument("--sample-steps", type=int, default=20)
    m.add_argument("--batch", type=int, default=500)
    s = sub.add_parser("score", help="read the samples back with real-trained networks")
    s.add_argument("--bundle", required=True)
    s.add_argument("--results", required=True)
    s.add_argument("--model", nargs="+", required=True, help="kind=pipeline_dir, sampled here")
    s.add_argument("--per-class", type=int, default=100)
    s.add_argument("--sample-steps", type=int, default=20)
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--work", help="the `models` work dir: copy its models.json and write README.md")
    args = parser.parse_args(argv)
    models(args) if args.phase == "models" else score(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
