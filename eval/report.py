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

from eval import clusters, faithfulness, fid, fidelity, maps, novelty
from eval.features import FEATURE_SPACES, DomainExtractor, get_extractor
from solargen import io
from solargen.config import load_config, resolve_device
from solargen.data.dataset import SolarDataset, from_uint8, load_dataset
from solargen.data.goes import GOES_CLASSES, flux_to_letter
from solargen.data.splits import fold_indices, load_folds
from solargen.diffusion.autoencoder import FitConfig, SolarAutoencoder, train_autoencoder
from solargen.errors import SolargenError

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


DEFAULT_FOLDS = "configs/folds/2012-rolling.yaml"


class EvalError(SolargenError):
    """Inputs the evaluation cannot use (mismatched shapes, too few frames, missing labels)."""


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


# --------------------------------------------------------------------------- generated input
@dataclass
class GeneratedSet:
    images: np.ndarray                 # (N, C, H, W) float32 in [-1, 1]
    flare_class: np.ndarray            # (N,) str, '' when not class-conditioned
    goes_flux: np.ndarray              # (N,) float, NaN when not flux-conditioned
    meta: dict[str, Any]
    source: str

    @property
    def letters(self) -> np.ndarray:
        """The class each frame was asked to show: its flare_class, else its flux's letter."""
        out = []
        for c, f in zip(self.flare_class, self.goes_flux):
            out.append(str(c) if c else (flux_to_letter(float(f)) if np.isfinite(f) else ""))
        return np.array(out, dtype=object)

    @classmethod
    def from_npz(cls, path: str | Path) -> "GeneratedSet":
        """A synthetic-set NPZ, read and checked by the diffusion layer's reader."""
        from solargen.diffusion.sample import load_npz
        s = load_npz(path)
        return cls(s["images"], s["flare_class"].astype(object), s["goes_flux"], json.loads(s["meta"]),
                   str(path))

    def subset(self, idx: np.ndarray) -> "GeneratedSet":
        return GeneratedSet(self.images[idx], self.flare_class[idx], self.goes_flux[idx], self.meta,
                            self.source)


def load_png_folder(path: str | Path, channels: int) -> GeneratedSet:
    """A folder of PNG frames, with an optional labels.csv (columns file, flare_class, goes_flux)."""
    from PIL import Image
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise EvalError(f"{path}: no PNG files in this folder")
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise EvalError(f"{path}: PNG frames can stand for 1- or 3-channel datasets, not {channels}")
    arrays = [np.asarray(Image.open(f).convert(mode)) for f in files]
    if len({a.shape for a in arrays}) != 1:
        raise EvalError(f"{path}: the PNG frames differ in size")
    stack = np.stack(arrays)
    stack = stack[:, None] if channels == 1 else stack.transpose(0, 3, 1, 2)
    images = from_uint8(stack)
    flare_class, goes_flux = np.full(len(files), "", dtype=object), np.full(len(files), np.nan)
    labels_csv = path / "labels.csv"
    if labels_csv.is_file():
        table = pd.read_csv(labels_csv, dtype={"file": str}).set_index("file")
        missing = [f.name for f in files if f.name not in table.index]
        if missing:
            raise EvalError(f"{labels_csv}: no row for {len(missing)} PNG files (e.g. {missing[0]})")
        rows = table.loc[[f.name for f in files]]
        if "flare_class" in rows:
            flare_class = rows["flare_class"].fillna("").astype(str).to_numpy(dtype=object)
        if "goes_flux" in rows:
            goes_flux = rows["goes_flux"].astype(float).to_numpy()
    return GeneratedSet(images, flare_class, goes_flux, {}, str(path))


# --------------------------------------------------------------------------- set drawing
def class_counts(proportions: dict[str, float], size: int) -> dict[str, int]:
    """Largest-remainder rounding of size * proportions."""
    raw = {c: p * size for c, p in proportions.items()}
    counts = {c: int(np.floor(v)) for c, v in raw.items()}
    for c in sorted(raw, key=lambda c: raw[c] - counts[c], reverse=True)[:size - sum(counts.values())]:
        counts[c] += 1
    return counts


def draw_sets(letters: np.ndarray, proportions: dict[str, float] | None, size: int, n_sets: int,
              rng: np.random.Generator) -> list[np.ndarray]:
    """Up to n_sets disjoint index sets of `size`; with proportions, each follows that class mix."""
    if proportions is None:
        order = rng.permutation(len(letters))
        return [order[i * size:(i + 1) * size] for i in range(min(n_sets, len(letters) // size))]
    counts = class_counts(proportions, size)
    pools = {c: rng.permutation(np.flatnonzero(letters == c)) for c in counts}
    feasible = min(len(pools[c]) // n for c, n in counts.items() if n > 0)
    return [np.sort(np.concatenate([pools[c][i * n:(i + 1) * n] for c, n in counts.items()]))
            for i in range(min(n_sets, feasible))]


def max_set_size(letters: np.ndarray, proportions: dict[str, float] | None) -> int:
    """The largest N of which one set with the class mix can be drawn."""
    if proportions is None:
        return len(letters)
    have = {c: int(np.sum(letters == c)) for c in proportions}

    def fits(size: int) -> bool:
        # a class may round to 0 frames only when it is truly rare at this N (p * N < 0.5)
        need = class_counts(proportions, size)
        return all(have[c] >= n and (n > 0 or proportions[c] * size < 0.5) for c, n in need.items())

    size = len(letters)
    while size > 0 and not fits(size):
        size -= 1
    return size


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
    feats = {}
    for name, ext in spaces.items():
        feats[name] = {"ref": _features(out, ext, ref_frames), "floor": _features(out, ext, floor_frames),
                       "gen": [_features(out, ext, gen.images[s]) for s in
                               tqdm(gen_sets, desc=f"{name} features (generated sets)", leave=False)]}
    results["fid"] = {name: {**fid.fid_summary(f["ref"], f["gen"], f["floor"], name),
                             "feature_description": spaces[name].description}
                      for name, f in feats.items()}

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


# --------------------------------------------------------------------------- report.md
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
              "| feature space | N | generated (mean ± std over sets) | sets | real-vs-real floor |",
              "|---|---|---|---|---|"]
    for name, s in r["fid"].items():
        lines.append(f"| {s['feature_description']} | {s['n']} | {_pm(s)} | {s['n_sets']} | "
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
    lines += ["## Beside the reference paper's Table 1", "",
              "| metric | paper discrete | paper continuous | this run |", "|---|---|---|---|"]
    ours = {"cluster error GT": f"{c['gt']['cluster_error']:.4g}",
            "cluster distance GT": f"{c['gt']['cluster_distance']:.4g}",
            "cluster std GT": f"{c['gt']['cluster_std']:.4g}",
            "cluster error GEN": _pm(c["cluster_error"]), "cluster distance GEN": _pm(c["cluster_distance"]),
            "cluster std GEN": _pm(c["cluster_std"]),
            "FID InceptionV3": _pm(r["fid"]["inception"]) if "inception" in r["fid"] else "not computed",
            "macro-F1 ratio gen/real": f"{f['macro_f1_ratio']:.3f}" if "skipped" not in f else "n/a"}
    for key, (disc, cont) in PAPER_TABLE1.items():
        lines.append(f"| {key} | {disc} | {cont} | {ours[key]} |")
    lines += ["", "Not comparable as such: the paper used N = 1000 per set and 10 sets, SDO data from "
              "other years with an A class, a 512-d ceVAE latent for the clusters and a DeiT classifier "
              f"for F1; this run uses N = {n}, {gen['n_sets']} sets, classes {list(data['train_class_counts'])} "
              f"from `{data['label_column']}`, a {r['clusters']['feature_description']} and a small CNN "
              "classifier. FID and the GT row shrink with N.", ""]
    return "\n".join(lines)
