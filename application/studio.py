"""The studio's work, callable from Python: what app.py shows and triggers lives here.

    info = inspect_model("runs/quickstart/model/pipeline")        # metadata, no weights loaded
    request = SampleRequest(model=str(info.path), flare_class="M", count=4, steps=20)
    result = generate(request)                                    # synthetic-set dict (NPZ keys)
    real = real_frames("runs/quickstart/data", info, "M", 4)      # real frames of that class
    probs = class_probabilities("runs/quickstart/eval/models/classifier", result["images"])
    files = export(result, request.model, "out/")                 # samples.npz, PNG zip, FITS zip

Every bad input is a StudioError (a ValueError) whose message says what is wrong and what would be
accepted, so the app can show it as it is.
"""
from __future__ import annotations

import json
import math
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from solargen import io
from solargen.config import resolve_device
from solargen.data.goes import GOES_CLASSES, check_flux, flux_to_class, flux_to_letter
from solargen.diffusion.sample import MIN_CLASS_FRAMES
from solargen.errors import SolargenError

QUICKSTART_DIR = Path("runs/quickstart")
STUDIO_FILE = "studio.json"          # written by `solargen quickstart`: its model, data, classifier
MAX_COUNT = 64
MAX_GUIDANCE = 20.0
# Seeds a browser's number box holds exactly (JavaScript numbers are doubles): image i of a request
# uses seed + i, and every one of them stays below 2^53.
SEED_LIMIT = 2 ** 53
SAMPLE_CHUNK = 16                    # images per pipeline call (the granularity of progress)
LOG_FLUX_RANGE = (-8.0, -3.0)        # the app's flux slider: A1.0 to X10


class StudioError(SolargenError):
    """A studio request that cannot be served; the message is meant for the user."""


# ----------------------------------------------------------------------------- models

@dataclass(frozen=True)
class ModelInfo:
    """What a pipeline directory says about itself (read from its JSON files, no weights)."""

    path: Path
    kind: str                          # class | flux | both | class_latent
    known_classes: tuple[str, ...]
    synthetic: bool                    # trained on the synthetic embedded default
    channels: tuple[str, ...]
    size: int
    unet_size: str
    train_steps: int | None
    num_train_timesteps: int
    label_column: str
    dataset: str
    fold: str
    train_window: tuple[str, str] | None
    frames_used: int | None
    class_counts: dict[str, int]
    flux_quantiles: dict[str, list[float]] | None

    @property
    def uses_flux(self) -> bool:
        return self.kind in ("flux", "both")

    def log_flux_range(self) -> tuple[float, float]:
        """The slider range: the training fluxes (log10) when known, else A1-X10."""
        if not self.flux_quantiles:
            return LOG_FLUX_RANGE
        lo = min(q[0] for q in self.flux_quantiles.values())
        hi = max(q[-1] for q in self.flux_quantiles.values())
        return math.floor(lo * 10) / 10, math.ceil(hi * 10) / 10

    @property
    def offered_classes(self) -> tuple[str, ...]:
        """The known classes learnt from at least MIN_CLASS_FRAMES training frames: those the
        studio synthesises (every known class when the pipeline records no counts)."""
        if not self.class_counts:
            return self.known_classes
        return tuple(c for c in self.known_classes if self.class_counts.get(c, 0) >= MIN_CLASS_FRAMES)

    def default_log_flux(self) -> float:
        """The median training flux of the rarest offered class (or 1e-5, M1.0)."""
        if not self.flux_quantiles:
            return -5.0
        rarest = min(self.offered_classes or self.known_classes, key=lambda c: self.class_counts.get(c, 0))
        q = self.flux_quantiles.get(rarest) or next(iter(self.flux_quantiles.values()))
        return round(float(q[len(q) // 2]), 2)

    def describe(self) -> str:
        """Markdown for the app's model panel."""
        data = ("**SYNTHETIC data** (the embedded default; not solar images, not a solar result)"
                if self.synthetic else "real data")
        window = f"{self.train_window[0]} to {self.train_window[1]}" if self.train_window else "unknown"
        counts = ", ".join(f"{c}: {n}" for c, n in self.class_counts.items()) or "unknown"
        missing = [c for c in GOES_CLASSES if c not in self.known_classes]
        cond = {"class": "GOES flare class", "flux": "log10 1-8 A X-ray flux",
                "both": "X-ray flux and its GOES class",
                "class_latent": "GOES flare class (latent drawn from the class's training frames)"}[self.kind]
        if not self.uses_flux:
            cond += " only: this model has no X-ray flux control"
        lines = [f"**Model** `{self.path}`",
                 f"- trained on {data}: `{self.dataset}`, fold {self.fold} training split ({window}), "
                 f"{self.frames_used if self.frames_used is not None else '?'} frames",
                 f"- conditioning: {cond} (label column `{self.label_column}`); classes learned: "
                 f"{counts}" + (f"; not learned: {', '.join(missing)}" if missing else ""),
                 f"- images: {self.size} x {self.size}, channel(s) {', '.join(self.channels) or '?'}",
                 f"- UNet {self.unet_size}, {self.train_steps if self.train_steps is not None else '?'} "
                 f"training steps, T = {self.num_train_timesteps}"]
        return "\n".join(lines)


def inspect_model(path: str | Path) -> ModelInfo:
    """Read a pipeline directory's metadata; a missing or foreign directory is a StudioError."""
    from solargen.diffusion.pipeline import PipelineError, check_pipeline_dir
    if path is None or not str(path).strip():
        raise StudioError("no model directory given: pick a pipeline directory (output_dir/pipeline "
                          "of `solargen train`, or the one `solargen quickstart` prints)")
    try:
        root = check_pipeline_dir(Path(str(path).strip()).expanduser())
    except PipelineError as exc:
        raise StudioError(str(exc)) from None
    meta = io.read_json(root / "model_index.json")["metadata"]
    cond = io.read_json(root / "conditioning" / "config.json")
    sched = io.read_json(root / "scheduler" / "scheduler_config.json")
    dmeta = meta.get("dataset_meta", {})
    run = meta.get("run_config", {})
    training = meta.get("training", {})
    window = training.get("train_window")
    return ModelInfo(
        path=root, kind=cond.get("kind", "class"),
        known_classes=tuple(cond.get("known_classes", GOES_CLASSES)),
        synthetic=bool(meta.get("synthetic_training_data", dmeta.get("synthetic", False))),
        channels=tuple(str(c) for c in dmeta.get("channels", [])), size=int(dmeta.get("size", 0)),
        unet_size=str(run.get("model", {}).get("size", "?")),
        train_steps=run.get("train", {}).get("max_steps"),
        num_train_timesteps=int(sched.get("num_train_timesteps", 1000)),
        label_column=str(meta.get("label_column", "goes_class")),
        dataset=str(training.get("dataset", "?")), fold=str(training.get("fold", "?")),
        train_window=tuple(window) if window else None, frames_used=training.get("frames_used"),
        class_counts=dict(meta.get("class_counts", {})), flux_quantiles=meta.get("flux_quantiles"))


_PIPELINES: dict[tuple[str, float, str], Any] = {}
_CACHE_LOCK = threading.Lock()
_DEVICE = {"name": "auto"}


def use_device(name: str) -> str:
    """Where the studio samples: "auto" (the GPU when present), "cpu", "cuda", "cuda:1" ..."""
    _DEVICE["name"] = resolve_device(name)
    return _DEVICE["name"]


def load_pipeline(path: str | Path):
    """The SolarDiffusionPipeline of a directory on the studio's device, loaded once per process
    (reloaded when the directory is rewritten). Sampling creates its own scheduler, so threads can
    share it."""
    from solargen.diffusion.pipeline import SolarDiffusionPipeline
    info = inspect_model(path)
    device = resolve_device(_DEVICE["name"])
    key = (str(info.path.resolve()), (info.path / "model_index.json").stat().st_mtime, device)
    with _CACHE_LOCK:
        if key not in _PIPELINES:
            pipeline = SolarDiffusionPipeline.from_pretrained(info.path).to(device)
            pipeline.set_progress_bar_config(disable=True)
            _PIPELINES[key] = pipeline
        return _PIPELINES[key]


# ----------------------------------------------------------------------------- sampling

@dataclass
class SampleRequest:
    """One press of the app's generate button."""

    model: str
    flare_class: str | None = None     # class models
    log_flux: float | None = None      # flux and class+flux models: log10 W m^-2
    guidance_scale: float = 1.0
    sampler: str = "dpm"
    steps: int = 20
    seed: int = 0
    count: int = 4


def _as_int(value: Any, name: str) -> int:
    """A whole number given as a number: an int as is, a float only when integral and exact (below
    2^53); strings, booleans and None are refused, each with one message naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise StudioError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or value != int(value):
            raise StudioError(f"{name} must be a whole number, got {value!r}")
        if abs(value) >= SEED_LIMIT:
            raise StudioError(f"{name} {value!r} is too large to be exact as a decimal number; give "
                              "it as an integer")
    return int(value)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def validate(request: SampleRequest, info: ModelInfo) -> SampleRequest:
    """Check every field against the model; return the request with clean types."""
    from solargen.diffusion.pipeline import SAMPLERS
    count = _as_int(request.count, "count")
    if not 1 <= count <= MAX_COUNT:
        raise StudioError(f"count must be between 1 and {MAX_COUNT} images, got {count}")
    steps = _as_int(request.steps, "steps")
    if not 1 <= steps <= info.num_train_timesteps:
        raise StudioError(f"steps must be between 1 and {info.num_train_timesteps} (the model's "
                          f"training timesteps), got {steps}")
    if request.sampler not in SAMPLERS:
        raise StudioError(f"unknown sampler {request.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    seed = _as_int(request.seed, "seed")
    if not 0 <= seed <= SEED_LIMIT - count:
        raise StudioError(f"seed must be between 0 and {SEED_LIMIT - count} (2^53 - count: image i "
                          f"uses seed + i), got {seed}")
    if isinstance(request.guidance_scale, (bool, str)) or request.guidance_scale is None:
        raise StudioError(f"guidance scale must be a number, got {request.guidance_scale!r}")
    guidance = float(request.guidance_scale)
    if not (math.isfinite(guidance) and 0 <= guidance <= MAX_GUIDANCE):
        raise StudioError(f"guidance scale must be between 0 and {MAX_GUIDANCE:g}, got {guidance!r}")
    flare_class, log_flux = None, None
    if info.uses_flux:
        if request.log_flux is None:
            raise StudioError(f"this model is conditioned on X-ray flux ({info.kind}): give log10 flux")
        try:
            log_flux = float(request.log_flux)
            check_flux(10 ** log_flux if math.isfinite(log_flux) else log_flux)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StudioError(f"log10 flux {request.log_flux!r}: {exc}") from None
        letter = flux_to_letter(10 ** log_flux)
        if info.kind == "both" and letter not in info.known_classes:
            raise StudioError(f"flux 10^{log_flux:g} W m^-2 is class {flux_to_class(10 ** log_flux)}; "
                              f"this model learned only classes {', '.join(info.known_classes)}")
        _check_offered(info, letter, f"flux 10^{log_flux:g} W m^-2 (class {letter})")
    else:
        if request.log_flux is not None and not _finite(request.log_flux):
            raise StudioError(f"log10 flux must be a finite number, got {request.log_flux!r} (this "
                              f"{info.kind} model does not use it)")
        flare_class = str(request.flare_class or "").strip().upper()
        if flare_class not in info.known_classes:
            what = "no flare class given" if not flare_class else f"flare class {request.flare_class!r} is unknown to this model"
            raise StudioError(f"{what}; it was trained on classes {', '.join(info.known_classes)}")
        _check_offered(info, flare_class, f"flare class {flare_class}")
    return SampleRequest(model=str(info.path), flare_class=flare_class, log_flux=log_flux,
                         guidance_scale=guidance, sampler=request.sampler, steps=steps, seed=seed,
                         count=count)


def _check_offered(info: ModelInfo, letter: str, what: str) -> None:
    if info.class_counts and letter not in info.offered_classes:
        raise StudioError(f"{what}: the model saw {info.class_counts.get(letter, 0)} training frame(s) of "
                          f"class {letter}, fewer than the {MIN_CLASS_FRAMES} the studio needs to draw "
                          f"it (a class seen that rarely comes out as texture); it offers "
                          f"{', '.join(info.offered_classes) or 'no class'}")


def requested_letter(request: SampleRequest) -> str:
    """The GOES class a (validated) request asks for."""
    return request.flare_class or flux_to_letter(10 ** request.log_flux)


def generate(request: SampleRequest,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Validate and sample; image i gets seed `seed + i` (as `solargen sample`). `progress(done,
    total)` is called after each chunk of images. Returns the synthetic-set dict."""
    from solargen.diffusion.sample import sample_set
    info = inspect_model(request.model)
    request = validate(request, info)
    pipeline = load_pipeline(info.path)
    parts = []
    for lo in range(0, request.count, SAMPLE_CHUNK):
        n = min(SAMPLE_CHUNK, request.count - lo)
        condition = ({"goes_flux": [10 ** request.log_flux] * n} if info.uses_flux
                     else {"flare_class": [request.flare_class] * n})
        parts.append(sample_set(pipeline, seed=request.seed + lo, batch_size=n, sampler=request.sampler,
                                num_inference_steps=request.steps,
                                guidance_scale=request.guidance_scale, progress=False, **condition))
        if progress is not None:
            progress(lo + n, request.count)
    meta = json.loads(parts[0]["meta"])
    meta["sampling"].update(seed=request.seed, n=request.count)
    return {"images": np.concatenate([p["images"] for p in parts]),
            "flare_class": np.concatenate([p["flare_class"] for p in parts]),
            "goes_flux": np.concatenate([p["goes_flux"] for p in parts]),
            "seed": np.concatenate([p["seed"] for p in parts]),
            "meta": json.dumps(meta, default=str)}


# ----------------------------------------------------------------------------- real frames

def real_frames(dataset_dir: str | Path, info: ModelInfo, letter: str, n: int,
                seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Up to `n` real frames of class `letter` under the model's label rule (non-stale frames of
    the whole dataset, drawn with `seed`), and their observation times."""
    from solargen.data.dataset import DatasetError, load_dataset
    try:
        ds = load_dataset(Path(str(dataset_dir).strip()).expanduser())
    except DatasetError as exc:
        raise StudioError(str(exc)) from None
    if ds.size != info.size or len(ds.channels) != len(info.channels):
        raise StudioError(f"{ds.root}: frames are {len(ds.channels)} x {ds.size} x {ds.size}, the "
                          f"model makes {len(info.channels)} x {info.size} x {info.size}")
    if info.label_column not in ds.labels:
        raise StudioError(f"{ds.root}: labels have no {info.label_column!r} column (the model's label rule)")
    letters = ds.labels[info.label_column]
    match = letters.notna() & (letters.astype(str) == letter)
    if "stale" in ds.labels:
        match &= ~ds.labels["stale"].fillna(False).astype(bool)
    idx = np.flatnonzero(match.to_numpy())
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    times = [t.strftime("%Y-%m-%d %H:%M") for t in ds.times[idx]]
    frames = np.asarray(ds.frames[idx], dtype=np.float32) if len(idx) else \
        np.zeros((0, len(ds.channels), ds.size, ds.size), np.float32)
    return frames, times


def std_map_figure(real: np.ndarray, synthetic: np.ndarray, letter: str, path: str | Path,
                   channel_name: str = "") -> dict[str, Any]:
    """Pixel-wise std maps of the real and the synthetic frames of one class, as one PNG (needs at
    least 2 of each)."""
    from eval.maps import std_maps_figure
    if len(real) < 2 or len(synthetic) < 2:
        raise StudioError(f"std maps need at least 2 real and 2 synthetic frames of class {letter} "
                          f"(have {len(real)} real, {len(synthetic)} synthetic)")
    return std_maps_figure({letter: real}, {letter: synthetic}, Path(path), channel_name=channel_name)


# ----------------------------------------------------------------------------- fidelity classifier

_CLASSIFIERS: dict[tuple[str, float], Any] = {}


def load_classifier(path: str | Path):
    """A fidelity classifier saved by `solargen eval` (<eval out>/models/classifier)."""
    from eval.fidelity import SmallCNN
    root = io.recover_dir(Path(str(path).strip()).expanduser())
    config = root / "config.json"
    if not config.is_file():
        raise StudioError(f"{root}: not a fidelity classifier (no config.json; `solargen eval` "
                          "saves one under <out>/models/classifier)")
    saved = io.read_json(config)
    if saved.get("_class_name") != SmallCNN.__name__ or not saved.get("class_names"):
        raise StudioError(f"{config}: not a fidelity classifier (a SmallCNN with class names)")
    key = (str(root.resolve()), config.stat().st_mtime)
    with _CACHE_LOCK:
        if key not in _CLASSIFIERS:
            _CLASSIFIERS[key] = SmallCNN.from_pretrained(root).eval()
        return _CLASSIFIERS[key]


def class_probabilities(classifier_dir: str | Path, images: np.ndarray) -> pd.DataFrame:
    """Per image, the probability the classifier gives each class (softmax of its logits)."""
    import torch
    model = load_classifier(classifier_dir)
    if images.shape[1] != model.config.in_channels:
        raise StudioError(f"{classifier_dir}: the classifier takes {model.config.in_channels} channel(s), "
                          f"the images have {images.shape[1]}")
    with torch.no_grad():
        probs = torch.softmax(torch.from_numpy(model.predict(images)), dim=1).numpy()
    names = list(model.config.class_names)
    # float64 before rounding: a rounded float32 shows as 0.12099999934434891 once in JSON
    table = pd.DataFrame(probs.astype(np.float64), columns=[f"P({c})" for c in names]).round(3)
    table.insert(0, "predicted", [names[i] for i in probs.argmax(axis=1)])
    table.insert(0, "image", np.arange(1, len(images) + 1))
    return table


# ----------------------------------------------------------------------------- exports

def export(result: dict[str, Any], model: str | Path, folder: str | Path) -> dict[str, Path]:
    """samples.npz (images + conditions), a zip of PNGs and a zip of FITS (brightness units, the
    generation settings in each header) under `folder`."""
    from solargen.diffusion.sample import write_fits, write_npz, write_pngs
    folder = Path(folder)
    pipeline = load_pipeline(model)
    written = {"npz": write_npz(folder / "samples.npz", result),
               "png": _zip(write_pngs(folder / "png", result), folder / "samples-png.zip"),
               "fits": _zip(write_fits(folder / "fits", result, pipeline, str(model)),
                            folder / "samples-fits.zip")}
    return written


def _zip(paths: list[Path], target: Path) -> Path:
    with io.atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                archive.write(path, path.name)
    return target


# ----------------------------------------------------------------------------- defaults

def quickstart_defaults(root: str | Path = QUICKSTART_DIR) -> dict[str, str]:
    """model / dataset / classifier paths the last `solargen quickstart` into `root` wrote
    (empty when there is none)."""
    path = Path(root) / STUDIO_FILE
    if not path.is_file():
        return {}
    found = io.read_json(path)
    return {k: v for k, v in found.items() if k in ("model", "dataset", "classifier") and v
            and Path(v).exists()}
