"""One GPU, ten minutes: train the 64 px class model, time training and sampling, score FID.

    bash bench/gpu_run.sh            # on a GPU machine (make the bundle first, see gpu_run.sh)
    bash bench/gpu_run.sh --smoke    # tiny sizes on the CPU (the test suite runs this)

Three phases, each a subcommand:
  bundle  the training window of one fold of a dataset directory -> a compact dataset directory
          (what travels to a GPU machine; 2,180 frames of 171 A at 64 px are about 18 MB)
  run     train with the project's trainer (configs/ddpm-64-class-gpu.yaml: bf16, channels_last,
          torch.compile, frames resident on the GPU); `max_steps` comes from a short speed probe so
          the run fits --train-seconds. Then time sampling (img/s per sampler) and draw --n-sets
          sets of --n images per sampler with the same seeds and the training class mix.
          Writes <work>/run.json, samples-<sampler>.npz, pipeline.tar (EMA weights, fp16).
  score   Inception and domain FID of every sampler's sets against real training frames of the
          same N, with the real-vs-real floor; sample grids, loss curve; summary.json and a
          README generated from it in --results.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solargen import io  # noqa: E402
from solargen.data.dataset import from_uint8, load_dataset, to_uint8, write_dataset  # noqa: E402
from solargen.data.splits import fold_indices, load_folds  # noqa: E402

# A sampler spec is "<name>:<steps>", e.g. dpm:20 or ddpm:250.
DEFAULT_SAMPLERS = ("dpm:20", "ddpm:250", "unipc:20", "dpm-karras:20", "ddim:50", "ddpm:1000")
SATURATED = float(from_uint8(250))  # a pixel at >= 250 of 255: saturated in the 8-bit browse scale
TARGETS = {"train_img_per_s": 5000, "dpm20_img_per_s": 2000, "dpm20_vs_ddpm_fid_ratio": 1.10,
           "fid_vs_floor_ratio": 3.0}


def parse_sampler(spec: str) -> tuple[str, int]:
    name, sep, steps = spec.partition(":")
    if not sep or not steps.isdigit():
        raise SystemExit(f"sampler spec {spec!r} must look like name:steps, e.g. dpm:20")
    return name, int(steps)


# ----------------------------------------------------------------------------- bundle

def make_bundle(dataset: str, folds: str, fold: str, out: str) -> Path:
    """The training window of `fold` as a dataset directory of its own (all label columns kept)."""
    ds = load_dataset(dataset)
    idx = fold_indices(ds.times, load_folds(folds).get(fold))["train"]
    if len(idx) == 0:
        raise SystemExit(f"{dataset}: fold {fold} has no training frames")
    meta = {k: v for k, v in ds.meta.items() if k not in ("format_version", "n_frames")}
    meta["subset"] = {"of": str(ds.root), "folds": folds, "fold": fold, "part": "train",
                      "frames": int(len(idx))}
    report = (f"Training window of fold {fold} ({folds}) of {ds.root}: {len(idx)} frames, "
              f"{ds.times[idx[0]]} to {ds.times[idx[-1]]}.\n")
    write_dataset(out, np.asarray(ds.frames[idx]), ds.labels.iloc[idx], meta, report)
    return Path(out)


# ----------------------------------------------------------------------------- run

def _throughput(log: pd.DataFrame, batch: int, skip_fraction: float = 0.2) -> float:
    """Images/s between the first logged row after `skip_fraction` of the run and the last row
    (compilation and warm-up fall before it)."""
    steady = log[log["step"] >= log["step"].max() * skip_fraction]
    if len(steady) < 2:
        steady = log.tail(2)
    steps = steady["step"].iloc[-1] - steady["step"].iloc[0]
    seconds = steady["seconds"].iloc[-1] - steady["seconds"].iloc[0]
    return float(steps * batch / seconds) if seconds > 0 else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def time_sampling(pipe, spec: str, batch: int, device: torch.device, thresholding: bool = True) -> float:
    """Images/s of one batch (after one untimed warm-up batch), guidance 1, bf16 on a GPU."""
    from solargen.diffusion.pipeline import make_scheduler
    name, n_steps = parse_sampler(spec)
    scheduler = make_scheduler(name, pipe.scheduler.config)
    if not thresholding and "thresholding" in scheduler.config:
        scheduler = type(scheduler).from_config(scheduler.config, thresholding=False)
    classes = [pipe.known_classes[0]] * batch
    saved, pipe.scheduler = pipe.scheduler, scheduler
    try:
        gen = torch.Generator(device).manual_seed(0)
        with _autocast(device):
            pipe(flare_class=classes, num_inference_steps=n_steps, generator=gen)
            _sync(device)
            tic = time.perf_counter()
            pipe(flare_class=classes, num_inference_steps=n_steps, generator=gen)
            _sync(device)
    finally:
        pipe.scheduler = saved
    return batch / (time.perf_counter() - tic)


def speed(args: argparse.Namespace) -> dict:
    """Sampling img/s of a saved pipeline per batch size, with and without x0 thresholding,
    eager and (last, since it compiles) with torch.compile."""
    from solargen.diffusion.pipeline import SolarDiffusionPipeline
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipe = SolarDiffusionPipeline.from_pretrained(args.pipeline, torch_dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    rows = []
    for compiled in (False, True) if args.compile else (False,):
        if compiled:
            pipe.unet.compile()
        for batch in args.batch:
            for thresholding in (True, False):
                for spec in args.samplers:
                    rate = time_sampling(pipe, spec, batch, device, thresholding)
                    rows.append({"sampler": spec, "batch": batch, "thresholding": thresholding,
                                 "compile": compiled, "img_per_s": rate})
                    print(f"[gpu_run] {rows[-1]}", flush=True)
                    io.write_json(Path(args.out), {"device": str(device), "rows": rows})
    return {"rows": rows}


def run(args: argparse.Namespace) -> dict:
    from solargen.diffusion.pipeline import SolarDiffusionPipeline
    from solargen.diffusion.sample import proportional_conditions, sample_set
    from solargen.diffusion.run_config import load_config
    from solargen.diffusion.train import train

    work, scratch = Path(args.work), Path(args.scratch or Path(args.work) / "scratch")
    work.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = load_config(args.config, [f"data.dataset={args.bundle}", *args.set])
    info = {"command": io.command_line(),
            "git_commit": os.environ.get("SOLARGEN_GIT_COMMIT") or io.git_commit(),  # a device copy has no .git
            "samplers_requested": list(args.samplers),
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "python": platform.python_version(), "config": args.config,
            "overrides": args.set, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    print(f"[gpu_run] {info['device']}, torch {torch.__version__}", flush=True)

    # 1. speed probe: the same config for --probe-steps steps
    probe = copy.deepcopy(cfg)
    probe.output_dir = str(scratch / "probe")
    probe.train.max_steps = args.probe_steps
    probe.train.log_every = max(1, args.probe_steps // 10)
    tic = time.perf_counter()
    try:
        train(probe, progress=False)
    except Exception as exc:  # noqa: BLE001 - a compiler failure must not cost the whole run
        if not cfg.train.compile:
            raise
        print(f"[gpu_run] probe with torch.compile failed ({type(exc).__name__}: {exc}); "
              "continuing without compile", flush=True)
        info["compile_error"] = f"{type(exc).__name__}: {exc}"
        cfg.train.compile = probe.train.compile = False
        probe.output_dir = str(scratch / "probe-eager")
        tic = time.perf_counter()
        train(probe, progress=False)
    probe_log = pd.read_csv(Path(probe.output_dir) / "log.csv")
    probe_rate = _throughput(probe_log, cfg.train.batch_size, skip_fraction=0.3)
    steps = max(args.min_steps, int(args.train_seconds * probe_rate / cfg.train.batch_size))
    cfg.train.max_steps = steps
    cfg.train.warmup_steps = min(cfg.train.warmup_steps, max(1, steps // 10))
    cfg.train.log_every = max(1, min(cfg.train.log_every, steps // 20))
    cfg.output_dir = str(scratch / "train")
    info["probe"] = {"steps": args.probe_steps, "img_per_s": probe_rate,
                     "wall_seconds": round(time.perf_counter() - tic, 1)}
    print(f"[gpu_run] probe: {probe_rate:.0f} img/s; training {steps} steps of "
          f"{cfg.train.batch_size}", flush=True)

    # 2. the training run
    tic = time.perf_counter()
    result = train(cfg, progress=False)
    wall = time.perf_counter() - tic
    log = pd.read_csv(scratch / "train" / "log.csv")
    frames_used = io.read_json(scratch / "train" / "data_summary.json")["frames_used"]
    info["train"] = {
        "steps": steps, "batch_size": cfg.train.batch_size, "frames_used": frames_used,
        "epochs": steps * cfg.train.batch_size / frames_used,
        "loop_seconds": round(result.loop_seconds, 1), "wall_seconds": round(wall, 1),
        "img_per_s": _throughput(log, cfg.train.batch_size),
        "img_per_s_including_compile": steps * cfg.train.batch_size / result.loop_seconds,
        "final_loss": float(log["loss"].tail(5).mean()),
        "log": log.to_dict(orient="list"), "run_config": cfg.to_dict()}
    print(f"[gpu_run] trained {steps} steps ({info['train']['epochs']:.0f} epochs) in "
          f"{result.loop_seconds:.0f} s: {info['train']['img_per_s']:.0f} img/s", flush=True)

    # 3. the trained pipeline (EMA weights) in fp16 as one file, before anything else can fail
    half = scratch / "pipeline-fp16"
    SolarDiffusionPipeline.from_pretrained(scratch / "train" / "pipeline", torch_dtype=torch.float16
                                           ).save_pretrained(half)
    with io.atomic_path(work / "pipeline.tar") as tmp, tarfile.open(tmp, "w") as tar:
        tar.add(half, arcname="pipeline")
    info["bundle"] = args.bundle
    io.write_json(work / "run.json", info)

    # 4. sampling: speed, then the scored sets (run.json is rewritten after each)
    pipe = SolarDiffusionPipeline.from_pretrained(scratch / "train" / "pipeline").to(device)
    pipe.set_progress_bar_config(disable=True)
    if cfg.train.compile:
        pipe.unet.compile()
    speed = {}
    for spec in args.speed_samplers:
        speed[spec] = time_sampling(pipe, spec, args.speed_batch, device)
        print(f"[gpu_run] sampling {spec}: {speed[spec]:.0f} img/s (batch {args.speed_batch})", flush=True)
        info["sampling_img_per_s"] = speed
        info["sampling_batch"] = args.speed_batch
        io.write_json(work / "run.json", info)

    sets = [proportional_conditions(pipe, args.bundle, args.n, seed=k)["flare_class"]
            for k in range(args.n_sets)]
    info["sets"] = {"n": args.n, "n_sets": args.n_sets, "seeds": [k * 100_000 for k in range(args.n_sets)],
                    "class_counts": [{c: s.count(c) for c in sorted(set(s))} for s in sets],
                    "files": {}}
    for spec in args.samplers:
        name, n_steps = parse_sampler(spec)
        tic = time.perf_counter()
        images, labels = [], []
        for k, classes in enumerate(sets):
            with _autocast(device):
                out = sample_set(pipe, flare_class=classes, seed=k * 100_000, batch_size=args.speed_batch,
                                 sampler=name, num_inference_steps=n_steps, progress=False)
            images.append(to_uint8(out["images"]))
            labels.append(out["flare_class"])
        path = work / f"samples-{name}-{n_steps}.npz"
        with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=np.stack(images), flare_class=np.stack(labels))
        info["sets"]["files"][spec] = path.name
        io.write_json(work / "run.json", info)
        print(f"[gpu_run] {args.n_sets} x {args.n} images with {spec} in "
              f"{time.perf_counter() - tic:.0f} s", flush=True)

    info["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    io.write_json(work / "run.json", info)
    return info


# ----------------------------------------------------------------------------- score

def main_score(work: Path, results: Path, bundle: str | None = None, encoder_epochs: int = 10,
               inception: bool = True, reuse: bool = False) -> dict:
    """FID of every sampler's sets in `work` (written by `run`); summary.json, figures, README.
    `reuse`: take the FIDs from an earlier score's fid.json (re-render only)."""
    from eval import fid
    from eval.features import DomainExtractor, InceptionExtractor
    from solargen.diffusion.autoencoder import FitConfig, train_autoencoder

    work, results = Path(work), Path(results)
    info = io.read_json(work / "run.json")
    ds = load_dataset(bundle or info["bundle"])
    column = info["train"]["run_config"]["data"]["label_column"]
    letters = ds.labels[column].fillna("").astype(str).to_numpy()
    pool = np.flatnonzero(letters != "")
    n = info["sets"]["n"]
    if len(pool) < 2 * n:
        raise SystemExit(f"{ds.root}: {len(pool)} labelled frames, fewer than the 2 x {n} the real "
                         "reference and floor sets need")
    rng = np.random.default_rng(0)
    pair = rng.choice(pool, 2 * n, replace=False)
    ref = np.asarray(ds.frames[np.sort(pair[:n])], dtype=np.float32)
    floor = np.asarray(ds.frames[np.sort(pair[n:])], dtype=np.float32)
    train_frames = np.asarray(ds.frames, dtype=np.float32)

    generated = {}
    for spec, name in info.get("sets", {}).get("files", {}).items():
        with np.load(work / name) as z:
            generated[spec] = {"images": from_uint8(z["images"]),
                               "flare_class": z["flare_class"]}

    if reuse and (results / "fid.json").is_file():      # re-render from the stored FIDs
        fids, losses = io.read_json(results / "fid.json"), io.read_json(results / "summary.json")[
            "domain_encoder_losses"]
        spaces = {}
    else:
        encoder, losses = train_autoencoder(train_frames, FitConfig(epochs=encoder_epochs))
        spaces = {"domain": DomainExtractor(encoder)}
        if inception:
            spaces["inception"] = InceptionExtractor(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        fids: dict[str, dict] = {}
    for space, extract in spaces.items():
        f_ref, f_floor = extract(ref), extract(floor)
        fids[space] = {spec: fid.fid_summary(f_ref, [extract(s) for s in g["images"]], f_floor, space)
                       for spec, g in generated.items()}
        print(f"[gpu_run] {space} FID: " + ", ".join(f"{k} {v['mean']:.2f}" for k, v in fids[space].items()),
              flush=True)

    results.mkdir(parents=True, exist_ok=True)
    summary = _summary(info, fids, losses)
    summary["saturated_fraction"] = {"real": float(np.mean(ref >= SATURATED)),
                                     **{k: float(np.mean(g["images"] >= SATURATED)) for k, g in generated.items()}}
    if (work / "speed.json").is_file():     # from a later `speed` call on the same model
        summary["sampling_speed_detail"] = io.read_json(work / "speed.json")["rows"]
    summary["data"] = {"dataset": str(ds.root), "description": ds.describe(), "synthetic": ds.synthetic,
                       "label_column": column}
    io.write_json(results / "summary.json", summary)
    io.write_json(results / "run.json", {k: v for k, v in info.items() if k != "train"} |
                  {"train": {k: v for k, v in info["train"].items() if k != "log"}})
    io.write_json(results / "fid.json", fids)
    _figures(info, generated, ref, letters[np.sort(pair[:n])], results)
    io.write_text(results / "README.md", render_readme(summary))
    io.write_command(results, notes=[f"(scored from the run of: {info.get('command', '')}, git commit "
                                     f"{info.get('git_commit')})"])
    return summary


def _summary(info: dict, fids: dict, encoder_losses: list[float]) -> dict:
    def means(space: str) -> dict:
        return {k: v["mean"] for k, v in fids.get(space, {}).items()}

    def floor(space: str) -> float | None:
        values = [v["floor_real_vs_real"] for v in fids.get(space, {}).values()]
        return values[0] if values else None

    t = info["train"]
    out = {"device": info["device"], "torch": info["torch"],
           "train_minutes": t["loop_seconds"] / 60, "train_steps": t["steps"], "epochs": t["epochs"],
           "batch_size": t["batch_size"], "train_img_per_s": t["img_per_s"],
           "train_img_per_s_including_compile": t["img_per_s_including_compile"],
           "speed_features": {k: t["run_config"]["train"][k] for k in
                              ("compile", "channels_last", "data_on_device", "mixed_precision")},
           "compile_error": info.get("compile_error"),
           "sampling_img_per_s": info.get("sampling_img_per_s", {}), "sampling_batch": info.get("sampling_batch"),
           "n_per_set": info["sets"]["n"], "n_sets": info["sets"]["n_sets"],
           "fid_inception": means("inception"), "fid_floor_inception": floor("inception"),
           "fid_domain": means("domain"), "fid_floor_domain": floor("domain"),
           "domain_encoder_losses": encoder_losses, "targets": TARGETS,
           "samplers_requested": info.get("samplers_requested"),
           "samplers_missing": [k for k in info.get("samplers_requested") or [] if k not in fids.get("domain", {})],
           "objective": t["run_config"]["objective"], "model_size": t["run_config"]["model"]["size"],
           "final_loss": t["final_loss"]}
    checks = {"train_img_per_s": out["train_img_per_s"] >= TARGETS["train_img_per_s"]}
    if "dpm:20" in out["sampling_img_per_s"]:
        checks["dpm20_img_per_s"] = out["sampling_img_per_s"]["dpm:20"] >= TARGETS["dpm20_img_per_s"]
    for space in ("inception", "domain"):
        f = out[f"fid_{space}"]
        ref = next((k for k in f if k.startswith("ddpm:")), None)
        if "dpm:20" in f and ref:
            out[f"dpm20_vs_{ref.replace(':', '')}_fid_ratio_{space}"] = f["dpm:20"] / f[ref]
            checks[f"dpm20_at_most_1.10x_{ref.replace(':', '')}_{space}"] = \
                f["dpm:20"] <= TARGETS["dpm20_vs_ddpm_fid_ratio"] * f[ref]
        if f and out[f"fid_floor_{space}"]:
            best = min(f, key=f.get)
            checks[f"best_within_3x_floor_{space}"] = f[best] <= TARGETS["fid_vs_floor_ratio"] * out[f"fid_floor_{space}"]
    out["checks"] = checks
    return out


def render_readme(s: dict) -> str:
    """The results README, every number read from summary.json."""
    def yes(ok: bool) -> str:
        return "met" if ok else "missed"

    c = s["checks"]
    d = s["data"]
    what = ("SYNTHETIC frames (a smoke run: not a solar result)" if d["synthetic"]
            else "real frames")
    lines = [f"# Generator run on {s['device']}", "",
             f"Made by `bench/gpu_run.sh` (commands in command.txt). A class-conditioned model trained on "
             f"{what}: {d['description']} (the training window of one fold, labels `{d['label_column']}`). "
             "Every number below is read from summary.json.", "",
             "## Speed", "",
             f"- Training: {s['train_img_per_s']:.0f} img/s steady state (batch {s['batch_size']}, "
             f"{', '.join(f'{k} {v}' for k, v in s['speed_features'].items())}); "
             f"{s['train_img_per_s_including_compile']:.0f} img/s including compilation. Target "
             f"{s['targets']['train_img_per_s']}: {yes(c['train_img_per_s'])}.",
             f"- {s['train_steps']} steps = {s['epochs']:.0f} epochs in {s['train_minutes']:.1f} minutes."]
    for spec, rate in s["sampling_img_per_s"].items():
        lines.append(f"- Sampling {spec}: {rate:.0f} img/s (batch {s['sampling_batch']}, guidance 1).")
    for row in s.get("sampling_speed_detail", []):
        lines.append(f"- Sampling {row['sampler']} ({'compiled' if row['compile'] else 'eager'}, batch {row['batch']}, "
                     f"x0 thresholding {'on' if row['thresholding'] else 'off'}; a later `speed` call): "
                     f"{row['img_per_s']:.0f} img/s.")
    if "dpm20_img_per_s" in c:
        lines.append(f"- DPM-20 target {s['targets']['dpm20_img_per_s']} img/s: {yes(c['dpm20_img_per_s'])}.")
    if s.get("compile_error"):
        lines.append(f"- torch.compile failed and the run went on eagerly: {s['compile_error']}")
    lines += ["", f"## Quality: FID of {s['n_sets']} sets of N = {s['n_per_set']} per sampler", "",
              "Against a real reference of the same N drawn from the fold's labelled training frames; the "
              "floor is a second, disjoint real set against the same reference.", "",
              "| sampler | Inception FID | domain FID |", "|---|---|---|"]
    specs = list(dict.fromkeys([*s["fid_inception"], *s["fid_domain"]]))
    for spec in specs:
        inc, dom = s["fid_inception"].get(spec), s["fid_domain"].get(spec)
        lines.append(f"| {spec} | {'-' if inc is None else f'{inc:.2f}'} | {'-' if dom is None else f'{dom:.3f}'} |")
    fi, fd = s["fid_floor_inception"], s["fid_floor_domain"]
    lines.append(f"| real-vs-real floor | {'-' if fi is None else f'{fi:.2f}'} | {'-' if fd is None else f'{fd:.3f}'} |")
    lines.append("")
    for space in ("inception", "domain"):
        for key, value in s.items():
            if key.startswith("dpm20_vs_") and key.endswith(space):
                ref = key.split("_")[2]
                # the name of runs before 2026-12-08 said "within 10 %" for the same one-sided check
                ok = c.get(f"dpm20_at_most_1.10x_{ref}_{space}", c.get(f"dpm20_within_10pct_of_{ref}_{space}"))
                lines.append(f"- {space} FID of DPM-20 / {ref}: {value:.2f} (target <= "
                             f"{s['targets']['dpm20_vs_ddpm_fid_ratio']:.2f}: {yes(ok)}).")
        if f"best_within_3x_floor_{space}" in c:
            best = min(s[f"fid_{space}"], key=s[f"fid_{space}"].get)
            lines.append(f"- best {space} FID ({best}, {s[f'fid_{space}'][best]:.2f}) within "
                         f"{s['targets']['fid_vs_floor_ratio']:g}x the real floor: "
                         f"{yes(c[f'best_within_3x_floor_{space}'])}.")
    if s.get("samplers_missing"):
        lines.append(f"- Requested but not sampled (the run's time limit ended it first): "
                     f"{', '.join(s['samplers_missing'])}.")
    sat = s.get("saturated_fraction", {})
    if sat:
        lines.append("- Saturated pixels (>= 250 of 255): " + ", ".join(f"{k} {v:.2%}" for k, v in sat.items()) + ".")
    lines += ["", "Figures: `samples.png` (the same seeds and classes under each sampler, real frames on "
              "top), `loss.png` (training loss).", ""]
    return "\n".join(lines)


def _figures(info: dict, generated: dict, ref: np.ndarray, ref_letters: np.ndarray, results: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = pd.DataFrame(info["train"]["log"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(log["step"], log["loss"], lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.set_title(f"{info['device']}: {info['train']['steps']} steps of {info['train']['batch_size']}")
    fig.tight_layout()
    with io.atomic_path(results / "loss.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

    first = next(iter(generated.values()))
    classes = [c for c in sorted(set(first["flare_class"][0]), key="ABCMX".index)]
    per_class = 4
    cols = [(c, i) for c in classes for i in np.flatnonzero(first["flare_class"][0] == c)[:per_class]]
    rows = ["real", *generated]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.1 * len(cols), 1.15 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for k, (c, i) in enumerate(cols):
            ax = axes[r, k]
            if row == "real":
                pick = np.flatnonzero(ref_letters == c)
                img = ref[pick[k % per_class % len(pick)], 0] if len(pick) else np.full(ref.shape[-2:], -1.0)
            else:
                img = generated[row]["images"][0, i, 0]
            ax.imshow(img, cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(row, fontsize=7)
            if r == 0:
                ax.set_title(c, fontsize=8)
    fig.suptitle("same seeds and classes per column; real training frames on top", fontsize=8)
    fig.tight_layout()
    with io.atomic_path(results / "samples.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_recipes(works: Path, summaries: dict[str, dict], path: Path) -> None:
    """Loss curves (each objective's own loss, so shapes, not levels, compare) and FID per recipe."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_fid) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in summaries:
        log = pd.DataFrame(io.read_json(works / name / "run.json")["train"]["log"])
        ax_loss.plot(log["step"], log["loss"] / log["loss"].iloc[0], lw=1, label=name)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss / first logged loss")
    ax_loss.legend(fontsize=7)
    names = list(summaries)
    for space, marker in (("inception", "o"), ("domain", "s")):
        values = [summaries[n][f"fid_{space}"].get("dpm:20", np.nan) for n in names]
        floor = summaries[names[0]][f"fid_floor_{space}"]
        ratio = np.asarray(values) / floor if floor else np.asarray(values)
        ax_fid.plot(names, ratio, marker, label=f"{space} FID / real floor (DPM-20)")
    ax_fid.axhline(1.0, color="grey", lw=0.8)
    ax_fid.set_yscale("log")
    ax_fid.tick_params(axis="x", labelrotation=20, labelsize=7)
    ax_fid.legend(fontsize=7)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    b = sub.add_parser("bundle", help="the training window of one fold as a compact dataset dir")
    b.add_argument("--dataset", required=True)
    b.add_argument("--folds", default="configs/folds/2012-rolling.yaml")
    b.add_argument("--fold", default="f1")
    b.add_argument("--out", required=True)
    r = sub.add_parser("run", help="train, time, sample (the part that needs the GPU)")
    r.add_argument("--bundle", required=True, help="dataset dir (from `bundle`)")
    r.add_argument("--work", required=True, help="output folder ($OUT on the device): run.json, "
                   "samples-*.npz, pipeline.tar")
    r.add_argument("--scratch", help="training runs and other bulk (default: <work>/scratch)")
    r.add_argument("--config", default="configs/ddpm-64-class-gpu.yaml")
    r.add_argument("--set", nargs="*", default=[], help="config overrides section.key=value")
    r.add_argument("--train-seconds", type=float, default=150.0, help="training budget after the probe")
    r.add_argument("--probe-steps", type=int, default=60)
    r.add_argument("--min-steps", type=int, default=10)
    r.add_argument("--speed-batch", type=int, default=500, help="images per sampling batch")
    r.add_argument("--speed-samplers", nargs="*", default=["dpm:20", "ddpm:250"])
    r.add_argument("--samplers", nargs="*", default=list(DEFAULT_SAMPLERS))
    r.add_argument("--n", type=int, default=500, help="images per scored set")
    r.add_argument("--n-sets", type=int, default=2)
    p = sub.add_parser("speed", help="sampling img/s of a saved pipeline by batch, thresholding, compile")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--out", required=True, help="JSON file")
    p.add_argument("--batch", type=int, nargs="+", default=[500, 2000])
    p.add_argument("--samplers", nargs="+", default=["dpm:20"])
    p.add_argument("--compile", action="store_true", help="also time with torch.compile (last)")
    s = sub.add_parser("score", help="FID, figures, summary.json, README")
    s.add_argument("--work", required=True, help="the folder `run` wrote")
    s.add_argument("--results", required=True, help="e.g. docs/results/<date>-gpu")
    s.add_argument("--bundle", help="dataset dir (default: the one recorded in run.json)")
    s.add_argument("--encoder-epochs", type=int, default=10)
    s.add_argument("--no-inception", action="store_true", help="domain FID only")
    s.add_argument("--reuse-fid", action="store_true", help="re-render from an earlier fid.json")
    args = parser.parse_args(argv)
    if args.phase == "bundle":
        print(make_bundle(args.dataset, args.folds, args.fold, args.out))
    elif args.phase == "speed":
        speed(args)
    elif args.phase == "run":
        run(args)
    else:
        main_score(Path(args.work), Path(args.results), args.bundle, args.encoder_epochs, not args.no_inception,
                   args.reuse_fid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
