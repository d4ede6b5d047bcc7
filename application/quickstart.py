"""`solargen quickstart`: the main job on a fresh machine, CPU only, offline.

    data      the synthetic embedded default (`solargen data synthetic`), or --data <dataset dir>
    model     a small class-conditioned diffusion model trained on the first fold's training split
    samples   images of every class the model learned (NPZ + PNG + FITS + a grid figure)
    eval      the generative evaluation of the model against the dataset (`solargen eval`)
    ablation  a small augmentation ablation (configs/ablation/quickstart.yaml)
    report    <out>/report.md: what ran, on which data, where everything is, how to open the app

Every stage checks for its finished output first, so a second run (or a run after a kill) reuses
what the first built; the training stage resumes from its last checkpoint. The settings of a run
are kept in <out>/quickstart.json and a rerun with other settings into the same --out is refused.

Presets (`preset`):
  synthetic default  4368 64 x 64 frames (`solargen data synthetic`; half a year of hourly
                     frames), one fold derived from their days (60% train, then validation and test
                     after 72 h gaps), configs/ddpm-tiny.yaml (XS UNet, 300 steps),
                     8 samples per class, evaluation with N = 64 per set, 2 sets, Inception and
                     domain FID, 3 epochs for the evaluation networks; about 10-15 minutes on 2 CPU cores.
  --data DIR         the same on real data with larger defaults: fold f1 of
                     configs/folds/2012-rolling.yaml, UNet S, 2000 training steps,
                     16 samples per class, N = 200 per set, 3 sets, 5 epochs (hours on a CPU,
                     minutes on a GPU).
  --tiny             480 16 x 16 frames, a few training steps, domain FID only, a two-cell
                     ablation: every artefact of the full run in well under a minute (the tests).
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml
from tqdm.auto import tqdm

from solargen import io
from solargen.config import config_path
from solargen.errors import SolargenError

STATE_FILE, REPORT_FILE, TIMINGS_FILE = "quickstart.json", "report.md", "timings.json"
FOLD_GAP_HOURS = 72            # >= the longest forecast horizon of the ablation tasks


class QuickstartError(SolargenError):
    """A quickstart that cannot run as asked (settings, an output directory of another run)."""


@dataclass
class QuickstartConfig:
    """Every setting one quickstart run depends on."""

    out: str = "runs/quickstart"
    data: str = ""                          # a dataset directory; empty: the synthetic default
    synthetic_frames: int = 4368            # `solargen data synthetic --n`
    size: int = 64
    folds: str = ""                         # empty: one fold derived from the data's days
    fold: str = "f1"
    train_config: str = "configs/ddpm-tiny.yaml"
    train_overrides: list[str] = field(default_factory=list)
    samples_per_class: int = 8
    sampler: str = "dpm"
    steps: int = 20
    guidance_scale: float = 1.0
    eval_set_size: int = 64
    eval_sets: int = 2
    eval_balanced_per_class: int = 16
    eval_epochs: int = 3
    eval_features: list[str] = field(default_factory=lambda: ["inception", "domain"])
    ablation_config: str = "configs/ablation/quickstart.yaml"
    ablation_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def synthetic(self) -> bool:
        return not self.data


TINY = dict(
    synthetic_frames=480, size=16,
    train_overrides=["model.attention_max_resolution=4", "train.max_steps=6", "train.batch_size=8",
                     "train.warmup_steps=1", "train.checkpoint_every=3"],
    samples_per_class=2, steps=2, eval_set_size=8, eval_sets=1, eval_balanced_per_class=4,
    eval_epochs=1, eval_features=["domain"],
    ablation_overrides={
        "tasks": ["binary-24h"], "strategies": ["none", "synthetic"], "n_synthetic": [2],
        "train": {"epochs": 1, "batch_size": 16, "patience": 1,
                  "model_overrides": {"patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 2}},
        "generator": {"steps": 2, "batch_size": 8,
                      "overrides": ["model.attention_max_resolution=4", "train.max_steps=4",
                                    "train.batch_size=4", "train.warmup_steps=1",
                                    "train.checkpoint_every=2"]}})
REAL = dict(folds="configs/folds/2012-rolling.yaml", train_overrides=["model.size=S", "train.max_steps=2000"], samples_per_class=16,
            eval_set_size=200, eval_sets=3, eval_balanced_per_class=50, eval_epochs=5)


def preset(out: str = "runs/quickstart", data: str = "", tiny: bool = False, **changes) -> QuickstartConfig:
    """The documented defaults: synthetic, --data (real, larger) or --tiny; then `changes`."""
    base = {**(TINY if tiny else {}), **(REAL if data and not tiny else {})}
    return replace(QuickstartConfig(out=out, data=data, **base), **changes)


# ----------------------------------------------------------------------------- stages

@dataclass
class Paths:
    out: Path

    @property
    def data(self) -> Path: return self.out / "data"
    @property
    def folds(self) -> Path: return self.out / "folds.yaml"
    @property
    def model_run(self) -> Path: return self.out / "model"
    @property
    def model(self) -> Path: return self.out / "model" / "pipeline"
    @property
    def samples(self) -> Path: return self.out / "samples"
    @property
    def eval(self) -> Path: return self.out / "eval"
    @property
    def classifier(self) -> Path: return self.out / "eval" / "models" / "classifier"
    @property
    def ablation(self) -> Path: return self.out / "ablation"


class Quickstart:
    """One run: `run()` executes the stages that have no finished output yet."""

    def __init__(self, config: QuickstartConfig, progress: bool = True):
        self.config = config
        self.paths = Paths(Path(config.out).resolve())
        self.progress = progress
        self.dataset = Path(config.data).resolve() if config.data else self.paths.data
        self.folds = config_path(config.folds).resolve() if config.folds else self.paths.folds
        self.timings: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ the run
    def stages(self) -> list[tuple[str, Callable[[], bool], Callable[[], None]]]:
        """(name, finished?, run) in order."""
        p = self.paths
        return [
            ("data", lambda: (self.dataset / "meta.json").is_file(), self.make_data),
            ("folds", lambda: self.folds.is_file(), self.make_folds),
            ("model", lambda: (io.recover_dir(p.model) / "model_index.json").is_file(), self.train_model),
            ("samples", lambda: (p.samples / "sampling.json").is_file(), self.sample),
            ("eval", lambda: (p.eval / "metrics.json").is_file(), self.evaluate),
            ("ablation", lambda: (p.ablation / "report.md").is_file(), self.ablate),
        ]

    def run(self) -> Path:
        self.claim()
        timings_file = self.paths.out / TIMINGS_FILE
        before = io.read_json(timings_file) if timings_file.is_file() else {}
        stages = self.stages()
        bar = tqdm(stages, desc="quickstart", unit="stage", disable=not self.progress)
        for name, finished, run in bar:
            bar.set_postfix_str(name)
            if finished():
                tqdm.write(f"[quickstart] {name}: reusing the finished output")
                self.timings[name] = {"seconds": before.get(name, {}).get("seconds"), "reused": True}
                continue
            tqdm.write(f"[quickstart] {name} ...")
            tic = time.perf_counter()
            run()
            self.timings[name] = {"seconds": round(time.perf_counter() - tic, 1), "reused": False}
        io.write_json(timings_file, self.timings)
        io.write_json(self.paths.out / "studio.json", {"model": str(self.paths.model),
                                                       "dataset": str(self.dataset),
                                                       "classifier": str(self.classifier_dir() or "")})
        report = self.write_report()
        return report

    def claim(self) -> None:
        """Record the settings; refuse an output directory that holds a run with other settings."""
        state = self.paths.out / STATE_FILE
        settings = asdict(self.config)
        settings["out"] = str(self.paths.out)
        if state.is_file():
            old = io.read_json(state)["config"]
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if diff:
                raise QuickstartError(f"{state}: this directory holds a quickstart with other settings "
                                      f"({', '.join(diff)}); use another --out or delete it")
        io.write_json(state, {"config": settings, **io.provenance()})

    # ------------------------------------------------------------------ data and folds
    def make_data(self) -> None:
        if not self.config.synthetic:
            raise QuickstartError(f"{self.dataset}: not a solargen dataset (no meta.json); build one "
                                  "with `solargen data build`")
        from application.cli import build_parser
        argv = ["data", "synthetic", "--n", str(self.config.synthetic_frames), "--size",
                str(self.config.size), "--out", str(self.dataset)]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            raise QuickstartError(f"`solargen {' '.join(argv)}` is not available in this installation "
                                  "(solargen.data.synthetic); pass --data <dataset dir> instead") from None
        args.func(args)

    def make_folds(self) -> None:
        """One fold over the data's whole days: 60% train, then val and test, each after a gap."""
        from solargen.data.dataset import load_dataset
        times = load_dataset(self.dataset).times
        first, last = times.min().normalize(), times.max().normalize()
        days = (last - first).days + 1
        gap = FOLD_GAP_HOURS // 24
        held = (days - int(days * 0.6) - 2 * gap) // 2
        if held < 1:
            raise QuickstartError(f"{self.dataset}: {days} days of frames are too few for a train / "
                                  f"val / test fold with {gap}-day gaps")
        train_end = first + pd.Timedelta(days=days - 2 * gap - 2 * held - 1)
        val_start = train_end + pd.Timedelta(days=gap + 1)
        test_start = val_start + pd.Timedelta(days=held + gap)
        day = lambda t: t.strftime("%Y-%m-%d")  # noqa: E731
        spec = {"gap_hours": FOLD_GAP_HOURS, "folds": [{
            "name": self.config.fold, "train": [day(first), day(train_end)],
            "val": [day(val_start), day(val_start + pd.Timedelta(days=held - 1))],
            "test": [day(test_start), day(test_start + pd.Timedelta(days=held - 1))]}]}
        io.write_text(self.folds, "# one fold over the quickstart dataset's days (solargen quickstart)\n"
                      + yaml.safe_dump(spec, sort_keys=False))

    # ------------------------------------------------------------------ model and samples
    def train_config(self):
        from solargen.data.dataset import load_dataset
        from solargen.diffusion.run_config import load_config
        ds = load_dataset(self.dataset)
        overrides = [f"output_dir={self.paths.model_run}", f"seed={self.config.seed}",
                     f"data.dataset={self.dataset}", f"data.folds={self.folds}",
                     f"data.fold={self.config.fold}", f"model.resolution={ds.size}",
                     f"model.channels={len(ds.channels)}", "train.sample_every=0",
                     *self.config.train_overrides]
        return load_config(self.config.train_config, overrides)

    def train_model(self) -> None:
        from solargen.diffusion.train import train
        train(self.train_config(), resume="latest", progress=self.progress)

    def sample(self) -> None:
        from solargen.diffusion.pipeline import SolarDiffusionPipeline
        from solargen.diffusion.sample import grid_conditions, sample_set, write_outputs
        pipeline = SolarDiffusionPipeline.from_pretrained(self.paths.model)
        result = sample_set(pipeline, seed=self.config.seed, sampler=self.config.sampler,
                            num_inference_steps=self.config.steps,
                            guidance_scale=self.config.guidance_scale, progress=self.progress,
                            **grid_conditions(pipeline, self.config.samples_per_class))
        write_outputs(self.paths.samples, result, pipeline, str(self.paths.model))

    # ------------------------------------------------------------------ evaluation and ablation
    def evaluate(self) -> None:
        from solargen.diffusion.autoencoder import FitConfig
        from eval.report import EvalConfig, run_evaluation
        c = self.config
        run_evaluation(EvalConfig(
            real=str(self.dataset), generated=str(self.paths.model), out=str(self.paths.eval),
            folds=str(self.folds), fold=c.fold, set_size=c.eval_set_size, n_sets=c.eval_sets,
            feature_spaces=tuple(c.eval_features), seed=c.seed,
            balanced_per_class=c.eval_balanced_per_class, guidance_scale=c.guidance_scale,
            num_inference_steps=c.steps, sampler=c.sampler,
            train=FitConfig(epochs=c.eval_epochs, seed=c.seed)))

    def ablation_config(self):
        from experiments.ablation import check_config, load_ablation_config
        base = load_ablation_config(self.config.ablation_config)
        changes = dict(self.config.ablation_overrides)
        train = replace(base.train, **changes.pop("train", {}))
        generator = replace(base.generator, **changes.pop("generator", {}))
        generator = replace(generator, config=str(config_path(generator.config)))
        config = replace(base, **changes, data=str(self.dataset), folds=str(self.folds),
                         fold_names=[self.config.fold], train=train, generator=generator,
                         cache_dir="")
        check_config(config, self.config.ablation_config)
        return config

    def ablate(self) -> None:
        from experiments.ablation_runner import run_ablation
        run_ablation(self.ablation_config(), self.paths.ablation, progress=self.progress)

    # ------------------------------------------------------------------ report
    def classifier_dir(self) -> Path | None:
        return self.paths.classifier if (self.paths.classifier / "config.json").is_file() else None

    def app_command(self) -> str:
        parts = ["solargen app", f"--model {self.paths.model}", f"--dataset {self.dataset}"]
        if self.classifier_dir():
            parts.append(f"--classifier {self.classifier_dir()}")
        return " ".join(parts)

    def write_report(self) -> Path:
        from solargen.data.dataset import load_dataset
        from application.studio import inspect_model
        p, c = self.paths, self.config
        ds = load_dataset(self.dataset)
        info = inspect_model(p.model)
        lines = ["# solargen quickstart", ""]
        if ds.synthetic:
            lines += ["> **Made on SYNTHETIC data.** The dataset is the embedded synthetic default "
                      "(procedural suns, not observations), the model learned from it, and every number "
                      "below tests the machinery only: none of it is a solar result.", ""]
        else:
            lines += [f"Made on the real dataset `{self.dataset}`.", ""]
        lines += ["## Where everything is", "", "| stage | output | seconds to build |", "|---|---|---|"]
        outputs = {"data": self.dataset, "folds": self.folds, "model": p.model, "samples": p.samples,
                   "eval": p.eval / "report.md", "ablation": p.ablation / "report.md"}
        for name, path in outputs.items():
            t = self.timings.get(name, {})
            secs = "?" if t.get("seconds") is None else f"{t['seconds']:.0f}"
            secs += " (reused from an earlier run)" if t.get("reused") else ""
            lines.append(f"| {name} | `{path}` | {secs} |")
        lines += ["", "## Open the studio on this model", "", "```", self.app_command(), "```", "",
                  "## Data", "", ds.describe(), "", f"Fold `{c.fold}` of `{self.folds}`.", "",
                  "## Model", "", info.describe(), "",
                  "## Samples of every class", "",
                  f"{c.samples_per_class} per class, {c.sampler} sampler, {c.steps} steps, guidance "
                  f"{c.guidance_scale:g}, seeds from {c.seed}: `{p.samples}` (samples.npz, png/, fits/).",
                  "", f"![samples]({p.samples.relative_to(p.out) / 'grid.png'})", ""]
        lines += _embed(p.eval / "report.md", "eval", "Evaluation")
        lines += _embed(p.ablation / "report.md", "ablation", "Ablation")
        prov = io.provenance()
        lines += ["## Provenance", "", f"- command: `{prov['command']}`", f"- git commit: {prov['git_commit']}",
                  f"- settings: `{p.out / STATE_FILE}`", ""]
        path = p.out / REPORT_FILE
        io.write_text(path, "\n".join(lines))
        return path


def _embed(report: Path, folder: str, title: str) -> list[str]:
    """A sub-report under a heading of its own (in place of its title), its other headings one
    level down and its relative links pointing into its folder."""
    if not report.is_file():
        return [f"## {title}", "", f"(no report at `{report}`)", ""]
    text = report.read_text(encoding="utf-8")
    text = re.sub(r"\A# .*\n", "", text)                      # its title: ours replaces it
    text = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.MULTILINE)
    text = re.sub(r"\]\((?!https?:|/|#)", f"]({folder}/", text)
    return [f"## {title} (`{report}`)", "", text.strip(), ""]


def run_quickstart(config: QuickstartConfig, progress: bool = True) -> Path:
    """Run (or finish) a quickstart; returns the path of its report.md."""
    return Quickstart(config, progress=progress).run()


def summary(config: QuickstartConfig) -> str:
    """What the user reads at the end: where everything is and how to open the app."""
    q = Quickstart(config, progress=False)
    p = q.paths
    lines = [f"report:   {p.out / REPORT_FILE}", f"data:     {q.dataset}", f"model:    {p.model}",
             f"samples:  {p.samples}", f"eval:     {p.eval / 'report.md'}",
             f"ablation: {p.ablation / 'report.md'}"]
    if config.synthetic:
        lines.append("note: everything was made on SYNTHETIC data (the embedded default), not solar data")
    lines += ["open the studio on this model:", f"  {q.app_command()}"]
    return "\n".join(lines)
