"""Sample synthetic sets from a SolarDiffusionPipeline and write them as NPZ, PNG and FITS.

`sample_set` is the library entry point (eval, ablation and the app call it). Image i of a set
gets seed `seed + i` and its own generator, so an image does not depend on the batch size or on
the other conditions in the set.

Synthetic-set NPZ keys: images float32 (N, C, H, W) in [-1, 1] (like dataset frames);
flare_class (N,) str ('' when not class-conditioned); goes_flux (N,) float (NaN when not
flux-conditioned); seed (N,) int; meta (0-d str: JSON of the pipeline metadata + sampling settings).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from solargen import io
from solargen.data.dataset import to_uint8
from solargen.data.goes import GOES_CLASSES, check_flux, letters_from_flux
from solargen.diffusion.pipeline import (DEFAULT_STEPS, PipelineError, SolarDiffusionPipeline,
                                         check_steps, make_scheduler)


class SyntheticSetError(ValueError):
    """A file that is not a usable synthetic-set NPZ."""


# A class the generator saw fewer training frames of than this is not synthesised for users
# (`solargen sample`, the studio) or the ablation's minority sets unless they lower the minimum.
MIN_CLASS_FRAMES = 20


def thin_classes(class_counts: dict[str, int], letters: Sequence[str], minimum: int) -> dict[str, int]:
    """The requested classes with fewer than `minimum` frames in the generator's training split
    (class -> its frame count)."""
    return {c: int(class_counts.get(c, 0)) for c in dict.fromkeys(letters)
            if int(class_counts.get(c, 0)) < minimum}


def check_class_frames(pipeline: SolarDiffusionPipeline, letters: Sequence[str], minimum: int) -> None:
    """Refuse to synthesise a class learnt from fewer than `minimum` training frames (a class the
    model never learnt is the conditioning's error, raised when sampling)."""
    known = [c for c in letters if c in pipeline.known_classes]
    thin = thin_classes(pipeline.metadata.get("class_counts", {}), known, minimum)
    if thin:
        raise PipelineError(
            "not synthesised: " + ", ".join(f"class {c} has {n} training frame(s)" for c, n in thin.items())
            + f" in this generator's training split, fewer than the minimum {minimum} (a class seen "
            "that rarely is drawn as texture, not as a Sun of that class); lower the minimum to "
            "sample it anyway")


def sample_set(pipeline: SolarDiffusionPipeline, flare_class: Sequence[str] | None = None,
               goes_flux: Sequence[float] | None = None, n: int | None = None, seed: int = 0,
               batch_size: int = 16, sampler: str = "dpm", num_inference_steps: int | None = None,
               guidance_scale: float = 1.0, progress: bool = True) -> dict[str, Any]:
    """One image per entry of `flare_class` or `goes_flux` (or `n` unconditional images when
    neither is given); image i uses seed + i. Returns the synthetic-set dict (keys as in the module
    docstring); write it with `write_npz`."""
    from tqdm.auto import tqdm
    if flare_class is not None and goes_flux is not None and pipeline.kind != "both":
        raise PipelineError("give flare_class or goes_flux, not both")
    if flare_class is None and goes_flux is None:
        if not n or n < 1:
            raise PipelineError("unconditional sampling needs n >= 1")
        total = int(n)
    else:
        total = len(flare_class if flare_class is not None else goes_flux)
        if total == 0:
            raise PipelineError("no conditions to sample")
    if batch_size < 1:
        raise PipelineError(f"batch_size must be >= 1, got {batch_size}")
    make_scheduler(sampler, pipeline.scheduler.config)  # unknown sampler: fail before any work
    steps = DEFAULT_STEPS[sampler] if num_inference_steps is None else num_inference_steps
    check_steps(steps, pipeline.scheduler.config.num_train_timesteps)
    seeds = np.arange(seed, seed + total, dtype=np.int64)
    pipeline.set_progress_bar_config(disable=True)
    images, labels, fluxes = [], [], []
    for lo in tqdm(range(0, total, batch_size), desc=f"sample ({sampler}, {steps} steps)",
                   unit="batch", disable=not progress):
        hi = min(lo + batch_size, total)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[lo:hi]]
        out = pipeline(flare_class=None if flare_class is None else list(flare_class[lo:hi]),
                       goes_flux=None if goes_flux is None else list(goes_flux[lo:hi]),
                       batch_size=hi - lo if flare_class is None and goes_flux is None else None,
                       guidance_scale=guidance_scale, num_inference_steps=steps, sampler=sampler,
                       generator=gens, output_type="pt")
        images.append(out.normalised)
        labels += out.flare_class
        fluxes += out.goes_flux
    meta = {**pipeline.metadata, "sampling": {"sampler": sampler, "steps": int(steps),
                                              "guidance_scale": float(guidance_scale),
                                              "seed": int(seed), "n": total}}
    return {"images": np.concatenate(images).astype(np.float32),
            "flare_class": np.asarray(labels, dtype=str),
            "goes_flux": np.asarray(fluxes, dtype=np.float64),
            "seed": seeds, "meta": json.dumps(meta, default=str)}


# ----------------------------------------------------------------------------- condition plans

def split_evenly(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of `total` in proportion to `weights` (sums exactly to total)."""
    w = np.asarray(weights, dtype=float)
    if total < 0 or w.sum() <= 0:
        raise PipelineError(f"cannot split {total} images by weights {list(weights)}")
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _fluxes_for_class(pipeline: SolarDiffusionPipeline, letter: str, count: int,
                      rng: np.random.Generator) -> list[float]:
    """Fluxes drawn from the training distribution of a class (its stored log10 quantiles)."""
    quantiles = (pipeline.metadata.get("flux_quantiles") or {}).get(letter)
    if quantiles is None:
        raise PipelineError(f"the pipeline metadata has no flux distribution for class {letter!r}")
    grid = np.linspace(0, 1, len(quantiles))
    return [float(10 ** np.interp(u, grid, quantiles)) for u in rng.uniform(size=count)]


def balanced_conditions(pipeline: SolarDiffusionPipeline, n: int, seed: int = 0) -> dict[str, list]:
    """`n` images split equally over the model's known classes (flux models: fluxes drawn from each
    class's training distribution)."""
    classes = pipeline.known_classes
    counts = split_evenly(n, [1.0] * len(classes))
    return _class_plan(pipeline, dict(zip(classes, counts)), seed)


def proportional_conditions(pipeline: SolarDiffusionPipeline, dataset_dir: str | Path, n: int,
                            seed: int = 0) -> dict[str, list]:
    """`n` images with the class mix of a dataset's labels (the pipeline's label rule); a flux model
    gets fluxes resampled from the dataset's own flux column."""
    from solargen.data.dataset import load_dataset
    ds = load_dataset(dataset_dir)
    meta = pipeline.metadata
    column = meta.get("label_column", "goes_class")
    known = pipeline.known_classes
    if not pipeline.conditioning.uses_flux:
        if column not in ds.labels:
            raise PipelineError(f"{ds.root}: labels have no {column!r} column (the model's label rule)")
        letters = ds.labels[column].dropna().astype(str).to_numpy()
        present = {c: int((letters == c).sum()) for c in GOES_CLASSES if c in known and (letters == c).any()}
        if not present:
            raise PipelineError(f"{ds.root}: none of the model's classes {known} occur in {column!r}")
        return _class_plan(pipeline, dict(zip(present, split_evenly(n, list(present.values())))), seed)
    flux_col = meta.get("flux_column") or "goes_flux"
    if flux_col not in ds.labels:
        raise PipelineError(f"{ds.root}: labels have no {flux_col!r} column (the model's flux label)")
    flux = ds.labels[flux_col].to_numpy(dtype=float)
    flux = flux[np.isfinite(flux) & (flux > 0)]
    flux = flux[np.isin(letters_from_flux(flux).astype(str), known)]
    if len(flux) == 0:
        raise PipelineError(f"{ds.root}: no {flux_col!r} values in the model's classes {known}")
    rng = np.random.default_rng(seed)
    return {"goes_flux": [float(check_flux(f)) for f in rng.choice(flux, size=n)]}


def grid_conditions(pipeline: SolarDiffusionPipeline, per_class: int) -> dict[str, list]:
    """`per_class` images of every known class; flux models use the class's median training flux."""
    classes = pipeline.known_classes
    if not pipeline.conditioning.uses_flux:
        return {"flare_class": [c for c in classes for _ in range(per_class)]}
    quantiles = pipeline.metadata["flux_quantiles"]
    median = {c: float(10 ** quantiles[c][len(quantiles[c]) // 2]) for c in classes}
    return {"goes_flux": [median[c] for c in classes for _ in range(per_class)]}


def _class_plan(pipeline: SolarDiffusionPipeline, counts: dict[str, int], seed: int) -> dict[str, list]:
    if not pipeline.conditioning.uses_flux:
        return {"flare_class": [c for c, k in counts.items() for _ in range(k)]}
    rng = np.random.default_rng(seed)
    return {"goes_flux": [f for c, k in counts.items() for f in _fluxes_for_class(pipeline, c, k, rng)]}


# ----------------------------------------------------------------------------- writers

def write_npz(path: str | Path, result: dict[str, Any]) -> Path:
    path = Path(path)
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=result["images"], flare_class=result["flare_class"],
                                goes_flux=result["goes_flux"], seed=result["seed"],
                                meta=np.array(result["meta"]))
    return path


def load_npz(path: str | Path) -> dict[str, Any]:
    """A synthetic-set NPZ as the synthetic-set dict, checked: images (N, C, H, W) finite and in
    [-1, 1] (as float32); flare_class ('' when absent), goes_flux (NaN when absent) and meta ('{}'
    when absent) filled in for sets written elsewhere."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        if "images" not in z:
            raise SyntheticSetError(f"{path}: not a synthetic set (no 'images' array; keys {sorted(z.files)})")
        stored = {k: z[k] for k in z.files}
    images = np.asarray(stored["images"], dtype=np.float32)
    if images.ndim != 4:
        raise SyntheticSetError(f"{path}: images must be (N, C, H, W), got shape {images.shape}")
    if not np.isfinite(images).all():
        raise SyntheticSetError(f"{path}: images contain NaN or infinite values")
    if images.min() < -1.001 or images.max() > 1.001:
        raise SyntheticSetError(f"{path}: images span [{images.min():.3g}, {images.max():.3g}], not "
                                "the normalised [-1, 1] of dataset frames")
    n = len(images)
    flare_class = stored["flare_class"].astype(str) if "flare_class" in stored else np.full(n, "")
    goes_flux = stored["goes_flux"].astype(float) if "goes_flux" in stored else np.full(n, np.nan)
    if len(flare_class) != n or len(goes_flux) != n:
        raise SyntheticSetError(f"{path}: {n} images but {len(flare_class)} flare_class and "
                                f"{len(goes_flux)} goes_flux entries")
    return {**stored, "images": np.clip(images, -1.0, 1.0), "flare_class": flare_class,
            "goes_flux": goes_flux, "meta": str(stored.get("meta", "{}"))}


def _stem(i: int, label: str, flux: float, seed: int) -> str:
    cond = label or "uncond"
    if np.isfinite(flux):
        cond += f"-{flux:.2e}"
    return f"{i:05d}-{cond}-seed{seed}"


def write_pngs(folder: str | Path, result: dict[str, Any]) -> list[Path]:
    """8-bit grey PNG per image and channel, from the normalised [-1, 1] images."""
    from PIL import Image
    folder = Path(folder)
    paths = []
    for i, img in enumerate(to_uint8(result["images"])):
        stem = _stem(i, result["flare_class"][i], result["goes_flux"][i], int(result["seed"][i]))
        for c, plane in enumerate(img):
            path = folder / (f"{stem}.png" if len(img) == 1 else f"{stem}-ch{c}.png")
            with io.atomic_path(path) as tmp:
                Image.fromarray(plane).save(tmp, format="PNG")
            paths.append(path)
    return paths


def write_fits(folder: str | Path, result: dict[str, Any], pipeline: SolarDiffusionPipeline,
               model: str) -> list[Path]:
    """One FITS per image in the data's brightness units, with the generation settings in the header."""
    from astropy.io import fits
    folder = Path(folder)
    sampling = json.loads(result["meta"])["sampling"]
    brightness = pipeline.to_brightness(result["images"])
    channels = pipeline.metadata.get("dataset_meta", {}).get("channels", [])
    paths = []
    for i, img in enumerate(brightness):
        header = fits.Header()
        header["FLARECLS"] = (str(result["flare_class"][i]), "GOES class condition ('' = none)")
        flux = float(result["goes_flux"][i])
        header["GOESFLUX"] = (flux if np.isfinite(flux) else None, "1-8 A flux condition [W m-2]")
        header["SEED"] = (int(result["seed"][i]), "torch generator seed of this image")
        header["GUIDANCE"] = (sampling["guidance_scale"], "classifier-free guidance scale s")
        header["SAMPLER"] = (sampling["sampler"], "diffusion sampler")
        header["STEPS"] = (sampling["steps"], "sampling steps")
        header["MODEL"] = (str(model), "solargen pipeline directory")
        header["CHANNELS"] = (",".join(map(str, channels)), "AIA channels (wavelengths, A)")
        header["SYNTHET"] = (True, "generated image, not an observation")
        header["TRAINSYN"] = (bool(pipeline.metadata.get("synthetic_training_data", False)),
                              "model trained on synthetic data")
        stem = _stem(i, result["flare_class"][i], flux, int(result["seed"][i]))
        path = folder / f"{stem}.fits"
        with io.atomic_path(path) as tmp:
            fits.PrimaryHDU(data=img[0] if len(img) == 1 else img, header=header).writeto(tmp, overwrite=True)
        paths.append(path)
    return paths


def grid_labels(result: dict[str, Any]) -> list[str]:
    """Row label per image: its class, or the class of its flux condition, or '' (unconditional)."""
    return [str(c) or (str(letters_from_flux(np.array([f]))[0]) if np.isfinite(f) else "")
            for c, f in zip(result["flare_class"], result["goes_flux"])]


def save_grid(images: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "",
              real: dict[str, np.ndarray] | None = None, channel: int = 0) -> Path:
    """Rows = conditions (first-seen order), columns = samples; with `real`, that row's real
    frames come first. One channel, [-1, 1] grey."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(dict.fromkeys(labels))
    per_row = {r: [images[i] for i, l in enumerate(labels) if l == r] for r in rows}
    reals = {r: list((real or {}).get(r, [])) for r in rows}
    n_real = max((len(v) for v in reals.values()), default=0)
    ncols = n_real + max(len(v) for v in per_row.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.4 * ncols + 0.6, 1.4 * len(rows) + 0.5),
                             squeeze=False)
    for r, row in enumerate(rows):
        cells = reals[row] + [None] * (n_real - len(reals[row])) + per_row[row]
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(cells) and cells[c] is not None:
                ax.imshow(cells[c][channel], cmap="gray", vmin=-1, vmax=1)
            else:
                ax.axis("off")
            if r == 0 and n_real:
                ax.set_title("real" if c < n_real else "generated", fontsize=8)
        axes[r][0].set_ylabel(row or "uncond")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def write_outputs(out: str | Path, result: dict[str, Any], pipeline: SolarDiffusionPipeline,
                  model: str, png: bool = True, fits: bool = True) -> dict[str, Any]:
    """samples.npz, png/, fits/, grid.png and sampling.json under `out`."""
    out = Path(out)
    written: dict[str, Any] = {"npz": str(write_npz(out / "samples.npz", result))}
    if png:
        written["png"] = len(write_pngs(out / "png", result))
    if fits:
        written["fits"] = len(write_fits(out / "fits", result, pipeline, model))
    labels = grid_labels(result)
    keep = _grid_subset(labels, 8)
    written["grid"] = str(save_grid(result["images"][keep], [labels[i] for i in keep], out / "grid.png"))
    io.write_json(out / "sampling.json", {**json.loads(result["meta"])["sampling"], "model": model,
                                          "written": written, **io.provenance()})
    return written


def _grid_subset(labels: Sequence[str], per_row: int) -> list[int]:
    seen: dict[str, int] = {}
    keep = []
    for i, l in enumerate(labels):
        if seen.get(l, 0) < per_row:
            seen[l] = seen.get(l, 0) + 1
            keep.append(i)
    return keep
