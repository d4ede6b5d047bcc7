"""The generative evaluation run: real splits, generated sets, every metric, report.md + metrics.json.

    config = EvalConfig(real="data/aia171-64", generated="samples.npz", out="runs/eval")
    results = run_evaluation(config)

Real data: the fold's train split is what the generator learned and what the evaluation networks
(domain encoder, fidelity classifier, flux regressor) train on; the fold's val + test frames are
the held-out real set. FID and cluster metrics compare generated sets with a real reference set of
the same N drawn from the labelled training frames; a second, disjoint real set of that N gives the
real-vs-real floor (FID) and the GT row (clusters). Generated sets follow the real class mix.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eval import clusters, consistency, faithfulness, fid, fidelity, maps, novelty
from eval.features import FEATURE_SPACES, DomainExtractor, get_extractor
from eval.generated import (EvalError, GeneratedSet, class_counts, draw_sets, load_png_folder,
                            max_set_size)
from eval.markdown import render_report
from solargen import io
from solargen.config import load_config, resolve_device
from solargen.data.dataset import SolarDataset, load_dataset
from solargen.data.goes import GOES_CLASSES
from solargen.data.splits import fold_indices, load_folds
from solargen.diffusion.autoencoder import FitConfig, SolarAutoencoder, train_autoencoder

DEFAULT_FOLDS = "configs/folds/2012-rolling.yaml"


@dataclass
class EvalConfig:
    """Everything one evaluation run depends on."""

    real: str = ""
    generated: str = ""
    out: str = ""
    folds: str = "auto"              # auto: the fold the generator was trained on, else
    fold: str = "auto"               # configs/folds/2012-rolling.yaml, fold f1
    label_column: str = "auto"       # auto: the generated set's metadata, else goes_class
    flux_column: str = "auto"        # auto: the metadata, else the label column's flux twin
    set_size: int | None = None      # N per set; default min(1000, half the labelled train frames)
    n_sets: int = 5
    k: int | None = None             # clusters; default one per class in the reference set
    feature_spaces: tuple[str, ...] = FEATURE_SPACES
    device: str = "auto"             # the GPU when present, else the CPU
    seed: int = 0
    latent_dim: int = 128
    novelty_max: int = 500
    balanced_per_class: int = 200   # model directories: generated frames per class for fidelity
    guidance_scale: float = 3.0
    num_inference_steps: int = 20
    sampler: str = "dpm"
    train: FitConfig = field(default_factory=FitConfig)


# --------------------------------------------------------------------------- model directories
def sample_from_model(model_dir: str | Path, plan: dict[str, list], config: EvalConfig,
                      cache: Path) -> GeneratedSet:
    """Sample the planned conditions ({'flare_class': [...]} or {'goes_flux': [...]}) from a
    pipeline directory; the set is cached as an NPZ in `cache` and reused by identical requests."""
    from solargen.diffusion.pipeline import SolarDiffusionPipeline, check_pipeline_dir
    from solargen.diffusion.sample import sample_set, write_npz
    check_pipeline_dir(model_dir)
    key = hashlib.sha1(json.dumps({"model": str(Path(model_dir).resolve()), "plan": plan,
                                   "g": config.guidance_scale, "steps": config.num_inference_steps,
                                   "sampler": config.sampler, "seed": config.seed},
                                  sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"samples-{key}.npz"
    if not path.is_file():
        pipeline = SolarDiffusionPipeline.from_pretrained(model_dir).to(config.device)
        result = sample_set(pipeline, flare_class=plan.get("flare_class"), goes_flux=plan.get("goes_flux"),
                            seed=config.seed, sampler=config.sampler,
                            num_inference_steps=config.num_inference_steps,
                            guidance_scale=config.guidance_scale)
        write_npz(path, result)
    return GeneratedSet.from_npz(path)


def _sample_plan(model_dir: Path, config: EvalConfig, size: int, classes: list[str], proportions: dict[str, float],
                 flux_by_class: dict[str, np.ndarray], cache: Path,
                 rng: np.random.Generator) -> tuple[GeneratedSet, np.ndarray, np.ndarray]:
    """Plan n_sets real-proportion sets plus one class-balanced set and sample them from a pipeline
    directory; returns the set and the indices of its real-proportion and its balanced part.
    Flux-conditioned models are asked for fluxes of real training frames of each class."""
    metadata = io.read_json(model_dir / "model_index.json").get("metadata", {})
    known = metadata.get("known_classes") or list(classes)
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise EvalError(f"{model_dir}: the real training frames hold classes {unknown} this model never "
                        f"learned (it knows {known}); evaluate on the fold it was trained on")
    letters = [c for c, n in class_counts(proportions, size).items() for _ in range(n)] * config.n_sets
    letters += [c for c in classes for _ in range(config.balanced_per_class)]
    if metadata.get("conditioning", "class") == "class":
        plan = {"flare_class": letters}
    else:
        plan = {"goes_flux": [float(rng.choice(flux_by_class[c])) for c in letters]}
    gen = sample_from_model(model_dir, plan, config, cache)
    n_mix = size * config.n_sets
    return gen, np.arange(n_mix), np.arange(n_mix, len(gen.images))


# --------------------------------------------------------------------------- helpers
def _resolve_columns(config: EvalConfig, meta: dict[str, Any], labels: pd.DataFrame) -> tuple[str, str]:
    label = config.label_column
    if label == "auto":
        label = meta.get("label_column") or "goes_class"
    flux = config.flux_column
    if flux == "auto":
        flux = meta.get("flux_column") or label.replace("class", "flux")
    for col in (label, flux):
        if col not in labels:
            raise EvalError(f"labels table has no column {col!r}; columns are {list(labels.columns)}")
    return label, flux


def _frames(ds: SolarDataset, idx: np.ndarray) -> np.ndarray:
    return np.asarray(ds.frames[np.asarray(idx, dtype=int)], dtype=np.float32) if len(idx) else \
        np.zeros((0, len(ds.channels), ds.size, ds.size), np.float32)


def _cached_model(directory: Path, cls: type, key: dict, train: Callable[[], tuple[Any, list[float]]]):
    """Load a model trained with identical inputs from `directory`, else train and save it."""
    info_path = io.recover_dir(directory) / "train_info.json"
    if info_path.is_file() and io.read_json(info_path).get("key") == key:
        return cls.from_pretrained(directory), io.read_json(info_path)["losses"]
    model, losses = train()
    with io.atomic_dir(directory) as tmp:
        model.save_pretrained(tmp)
        io.write_json(tmp / info_path.name, {"key": key, "losses": losses})
    return model, losses


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _by_class(frames: np.ndarray, letters: np.ndarray, classes: list[str], limit: int) -> dict[str, np.ndarray]:
    return {c: frames[letters == c][:limit] for c in classes if np.any(letters == c)}


# --------------------------------------------------------------------------- the run
def load_eval_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> EvalConfig:
    """A YAML of EvalConfig fields plus `key=value` overrides (solargen.config)."""
    return load_config(EvalConfig, path, overrides)


def run_evaluation(config: EvalConfig) -> dict[str, Any]:
    """Run every metric and write report.md, metrics.json and figures into config.out."""
    device = resolve_device(config.device)
    config = replace(config, device=device, train=replace(config.train, device=device))
    out = Path(config.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    ds = load_dataset(config.real)
    source = Path(config.generated)
    if not source.exists():
        raise EvalError(f"{source}: no such generated set (a model directory, PNG folder or NPZ)")
    model_dir = source.is_dir() and (source / "model_index.json").is_file()
    if model_dir:
        gen_meta = io.read_json(source / "model_index.json").get("metadata", {})
    else:
        gen = GeneratedSet.from_npz(source) if source.suffix == ".npz" else load_png_folder(source, len(ds.channels))
        gen_meta = gen.meta
    label_col, flux_col = _resolve_columns(config, gen_meta, ds.labels)
    trained_on = gen_meta.get("training", {})
    folds_file = trained_on.get("folds", DEFAULT_FOLDS) if config.folds == "auto" else config.folds
    fold_name = trained_on.get("fold", "f1") if config.fold == "auto" else config.fold
    parts = fold_indices(ds.times, load_folds(folds_file).get(fold_name))
    train_idx = parts["train"]
    held_idx = np.sort(np.concatenate([parts.get("val", []), parts.get("test", [])]).astype(int))
    if len(train_idx) == 0 or len(held_idx) == 0:
        raise EvalError(f"{config.real}: fold {fold_name} of {folds_file} leaves "
                        f"{len(train_idx)} training and {len(held_idx)} held-out frames")
    real_letters = ds.labels[label_col].fillna("").astype(str).to_numpy(dtype=object)
    real_flux = ds.labels[flux_col].astype(float).to_numpy()
    pool = train_idx[real_letters[train_idx] != ""]
    if len(pool) < 4:
        raise EvalError(f"{config.real}: only {len(pool)} training frames carry a {label_col!r} label")
    classes = [c for c in GOES_CLASSES if np.any(real_letters[pool] == c)]
    proportions = {c: float(np.mean(real_letters[pool] == c)) for c in classes}

    planned_size = min(config.set_size or 1000, len(pool) // 2)
    if model_dir:
        flux_by_class = {c: real_flux[pool][(real_letters[pool] == c) & (real_flux[pool] > 0)] for c in classes}
        gen, mix_part, balanced_part = _sample_plan(source, config, planned_size, classes, proportions,
                                                    flux_by_class, out / "samples", rng)
    else:
        mix_part = balanced_part = np.arange(len(gen.images))
    if gen.images.shape[1:] != (len(ds.channels), ds.size, ds.size):
        raise EvalError(f"{gen.source}: generated frames are {gen.images.shape[1:]}, the real dataset "
                        f"holds {(len(ds.channels), ds.size, ds.size)} frames")
    gen_letters = gen.letters
    conditioned = bool(np.any(gen_letters != ""))
    mix = proportions if conditioned else None
    size = min(planned_size, max_set_size(gen_letters[mix_part], mix))
    if size < 2:
        raise EvalError(f"cannot draw equal-N sets: {len(pool)} labelled real training frames, "
                        f"{len(gen.images)} generated frames ({gen.source})")
    gen_sets = [mix_part[s] for s in draw_sets(gen_letters[mix_part], mix, size, config.n_sets, rng)]
    real_pair = rng.choice(pool, 2 * size, replace=False)
    ref_idx, floor_idx = np.sort(real_pair[:size]), np.sort(real_pair[size:])
    ref_frames, floor_frames = _frames(ds, ref_idx), _frames(ds, floor_idx)
    train_frames = _frames(ds, train_idx)

    results: dict[str, Any] = {
        "provenance": io.provenance(), "config": _config_dict(config),
        "data": {"real": ds.describe(), "real_dir": str(config.real), "synthetic_real": ds.synthetic,
                 "synthetic_training": bool(gen.meta.get("synthetic_training_data", False)),
                 "fold": fold_name, "folds_file": str(folds_file), "label_column": label_col,
                 "flux_column": flux_col, "n_train": len(train_idx), "n_heldout": len(held_idx),
                 "n_labelled_train": len(pool),
                 "train_class_counts": {c: int(np.sum(real_letters[pool] == c)) for c in classes},
                 "channels": ds.channels, "size": ds.size},
        "generated": {"source": gen.source, "model_dir": str(source) if model_dir else None,
                      "n": len(gen.images),
                      "class_counts": {c: int(np.sum(gen_letters == c)) for c in sorted(set(gen_letters))},
                      "set_size": size, "n_sets": len(gen_sets),
                      "class_mix": "real training proportions" if mix else "random (unlabelled)"},
    }

    # Domain encoder: clusters, domain FID and feature-space novelty live in its latent space.
    train_cfg = config.train
    enc_key = {"data": _digest(train_frames), "latent_dim": config.latent_dim, "train": asdict(train_cfg)}
    encoder, enc_losses = _cached_model(out / "models" / "domain_encoder", SolarAutoencoder, enc_key,
                                        lambda: train_autoencoder(train_frames, train_cfg, config.latent_dim))
    domain = DomainExtractor(encoder.to(config.device))
    results["training"] = {"domain_encoder": {"n_frames": len(train_frames), "epoch_losses": enc_losses,
                                              "data": f"fold {fold_name} train split, all frames"}}

    spaces = {s: (domain if s == "domain" else get_extractor(s, config.device)) for s in config.feature_spaces}
    # Multi-channel frames: Inception reads each channel as a grey image, with its own real floor;
    # the domain encoder reads all channels at once (the joint latent).
    views = {name: [(name, slice(None))] if name == "domain" or len(ds.channels) == 1 else
             [(f"{name}-{ch}", slice(c, c + 1)) for c, ch in enumerate(ds.channels)] for name in spaces}
    feats, results["fid"] = {}, {}
    for name, ext in spaces.items():
        for label, part in views[name]:
            f = {"ref": _features(out, ext, ref_frames[:, part]), "floor": _features(out, ext, floor_frames[:, part]),
                 "gen": [_features(out, ext, gen.images[s][:, part]) for s in
                         tqdm(gen_sets, desc=f"{label} features (generated sets)", leave=False)]}
            feats[label] = f
            results["fid"][label] = {**fid.fid_summary(f["ref"], f["gen"], f["floor"], label),
                                     "feature_description": ext.description}

    dom = feats["domain"] if "domain" in feats else {
        "ref": domain(ref_frames), "floor": domain(floor_frames), "gen": [domain(gen.images[s]) for s in gen_sets]}
    k = config.k or len(classes)
    results["clusters"] = {**clusters.cluster_summary(dom["ref"], dom["floor"], dom["gen"], k, "domain",
                                                      config.seed),
                           "feature_description": domain.description}

    # Fidelity: a classifier of real training frames, on held-out real and class-balanced generated.
    held_labelled = held_idx[np.isin(real_letters[held_idx], classes)]
    if conditioned:
        cls_key = {"data": _digest(_frames(ds, pool)), "classes": classes, "train": asdict(train_cfg)}
        clf, clf_losses = _cached_model(
            out / "models" / "classifier", fidelity.SmallCNN, cls_key,
            lambda: fidelity.train_classifier(_frames(ds, pool), real_letters[pool], classes, train_cfg))
        clf.to(config.device)
        part = gen_letters[balanced_part]
        shared = [c for c in classes if np.any(part == c)]
        per = min(int(np.sum(part == c)) for c in shared)
        balanced = np.sort(np.concatenate([rng.permutation(balanced_part[part == c])[:per] for c in shared]))
        results["fidelity"] = fidelity.fidelity_summary(
            clf, _frames(ds, held_labelled), real_letters[held_labelled],
            gen.images[balanced], gen_letters[balanced])
        results["fidelity"]["per_class_generated"] = per
        unseen = sorted(set(real_letters[held_idx]) - set(classes) - {""})
        results["fidelity"]["heldout_classes_not_in_training"] = {
            c: int(np.sum(real_letters[held_idx] == c)) for c in unseen}
        results["training"]["classifier"] = {"n_frames": len(pool), "epoch_losses": clf_losses}
        real_by = _by_class(_frames(ds, pool), real_letters[pool], classes, 200)
        gen_by = _by_class(gen.images[balanced], gen_letters[balanced], classes, 200)
        results["std_maps"] = maps.std_maps_figure(real_by, gen_by, out / "figures" / "std_maps.png",
                                                   channel_name=f"(AIA {ds.channels[0]})")
        maps.montage_figure(real_by, gen_by, out / "figures" / "montage.png")
    else:
        results["fidelity"] = {"skipped": "the generated frames carry no class or flux condition"}

    # Novelty: nearest training frame, generated vs held-out real, pixel and domain space.
    n_nov = min(config.novelty_max, len(gen.images), len(held_idx))
    gen_nov = gen.images[np.sort(rng.choice(len(gen.images), n_nov, replace=False))]
    held_nov = _frames(ds, rng.choice(held_idx, n_nov, replace=False))
    nov = [novelty.novelty_summary(gen_nov, held_nov, train_frames, "pixel"),
           novelty.novelty_summary(domain(gen_nov), domain(held_nov), domain(train_frames), "domain")]
    novelty.novelty_figure(nov, out / "figures" / "novelty.png")
    results["novelty"] = [{k: v for k, v in s.items() if k not in ("generated", "heldout")} for s in nov]

    # Cross-channel consistency: each channel's brightening against the flare a frame stands for.
    if len(ds.channels) > 1 and conditioned:
        held_flux = real_flux[held_idx]
        results["consistency"] = consistency.consistency_summary(
            ds.channels, _frames(ds, held_idx), held_flux, gen.images[balanced], gen.goes_flux[balanced],
            gen_letters[balanced])

    # Faithfulness: only for flux-conditioned frames.
    asked = np.isfinite(gen.goes_flux)
    if asked.any():
        flux_train = train_idx[np.isfinite(real_flux[train_idx]) & (real_flux[train_idx] > 0)]
        flux_held = held_idx[np.isfinite(real_flux[held_idx]) & (real_flux[held_idx] > 0)]
        reg_key = {"data": _digest(_frames(ds, flux_train)), "column": flux_col, "train": asdict(train_cfg)}
        reg, reg_losses = _cached_model(
            out / "models" / "flux_regressor", fidelity.SmallCNN, reg_key,
            lambda: faithfulness.train_flux_regressor(_frames(ds, flux_train), real_flux[flux_train],
                                                      train_cfg))
        reg.to(config.device)
        faith = faithfulness.faithfulness_summary(reg, gen.images[asked], gen.goes_flux[asked],
                                                  _frames(ds, flux_held), real_flux[flux_held])
        faithfulness.faithfulness_figure(faith, out / "figures" / "faithfulness.png")
        results["faithfulness"] = {k: v for k, v in faith.items() if not k.endswith("log_flux")}
        results["training"]["flux_regressor"] = {"n_frames": len(flux_train), "epoch_losses": reg_losses}
    else:
        results["faithfulness"] = {"skipped": "the generated frames were not conditioned on X-ray flux"}

    io.write_json(out / "metrics.json", results)
    io.write_text(out / "report.md", render_report(results))
    return results


def _features(out: Path, extractor, frames: np.ndarray) -> np.ndarray:
    """Features of frames; Inception features (slow on CPU) are cached under out/cache by content."""
    path = out / "cache" / f"features-{extractor.name}-{_digest(frames)}.npy"
    if extractor.name == "inception" and path.is_file():
        return np.load(path)
    feats = extractor(frames)
    if extractor.name == "inception":
        io.save_npy(path, feats)
    return feats


def _config_dict(config: EvalConfig) -> dict[str, Any]:
    d = asdict(config)
    d["feature_spaces"] = list(config.feature_spaces)
    return d
