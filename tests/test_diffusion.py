"""Conditional diffusion: conditioning, pipeline round-trip, guidance, training, resume, sampling CLI.

Everything runs on tiny 16 x 16 datasets written with write_dataset and an XS UNet on one thread.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from application.cli import main as cli_main
from solargen.config import ConfigError
from solargen.data.dataset import write_dataset
from solargen.data.goes import GoesError
from solargen.diffusion.conditioning import ConditioningError, FlareConditioning
from solargen.diffusion.loss import PREDICTION_TYPES, ObjectiveConfig
from solargen.diffusion.pipeline import (SAMPLERS, PipelineError, SolarDiffusionPipeline,
                                         UNetConfig, check_pipeline_dir, make_scheduler)
from solargen.diffusion.sample import (balanced_conditions, load_npz, proportional_conditions,
                                       sample_set, split_evenly)
from solargen.diffusion.run_config import (DataConfig, DiffusionTrainConfig, RunConfig, TrainError,
                                           load_config)
from solargen.diffusion.train import _make_pipeline, build_models, train
from solargen.diffusion.training_data import load_training_data

SIZE = 16
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FLUX = {"B": 3e-7, "C": 2e-6, "M": 2e-5}


def make_dataset(root: Path, n_train: int = 24, n_val: int = 6) -> Path:
    """Frames in the January training window and the April validation window of `folds.yaml`;
    brightness of a central blob grows with the class; two frames lack a label, one is stale."""
    rng = np.random.default_rng(0)
    t_train = pd.date_range("2012-01-02", periods=n_train, freq="h", tz="UTC")
    t_val = pd.date_range("2012-04-10", periods=n_val, freq="h", tz="UTC")
    times = t_train.append(t_val)
    letters = np.array(["B", "C", "M"] * ((len(times) + 2) // 3))[: len(times)].astype(object)
    flux = np.array([FLUX[c] * (1 + 0.5 * rng.random()) for c in letters])
    letters[[1, 5]] = None
    flux[[1, 5]] = np.nan
    stale = np.zeros(len(times), bool)
    stale[7] = True
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disk = ((yy - SIZE / 2 + 0.5) ** 2 + (xx - SIZE / 2 + 0.5) ** 2 < (SIZE * 0.4) ** 2).astype(np.float32)
    level = {"B": -0.2, "C": 0.3, "M": 0.8, None: 0.0}
    frames = np.stack([(disk * (0.5 + 0.5 * level[c]) * 2 - 1)[None] + 0.05 * rng.standard_normal((1, SIZE, SIZE))
                       for c in letters]).clip(-1, 1).astype(np.float32)
    labels = pd.DataFrame({"t_obs": times, "goes_flux": flux, "goes_class": letters, "stale": stale})
    meta = {"source": "test", "channels": ["171"], "size": SIZE, "synthetic": True,
            "normalisation": {"scaling": "linear", "lo": [0.0], "hi": [255.0]}}
    write_dataset(root, frames, labels, meta, "test dataset\n")
    return root


def make_folds(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"gap_hours": 72, "folds": [
        {"name": "t1", "train": ["2012-01-01", "2012-01-31"], "val": ["2012-04-04", "2012-04-30"]}]}))
    return path


def tiny_config(tmp: Path, dataset: Path, out: str = "run", kind: str = "class", **train) -> RunConfig:
    settings = dict(conditioning=kind, max_steps=6, batch_size=4, learning_rate=2e-3, warmup_steps=2,
                    ema_decay=0.9, sample_every=0, checkpoint_every=3, keep_checkpoints=1,
                    mixed_precision="no")
    settings.update(train)
    return RunConfig(output_dir=str(tmp / out), seed=0,
                     data=DataConfig(dataset=str(dataset), folds=str(make_folds(tmp / "folds.yaml")),
                                     fold="t1"),
                     model=UNetConfig(size="XS", resolution=SIZE, channels=1, attention_max_resolution=4),
                     train=DiffusionTrainConfig(**settings))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("diffusion")
    make_dataset(tmp / "ds")
    return tmp


@pytest.fixture(scope="module")
def trained(workdir) -> dict:
    """One uninterrupted tiny run (also the reference for kill-and-resume)."""
    cfg = tiny_config(workdir, workdir / "ds", out="full", sample_every=3, samples_per_class=2,
                      sample_steps=2)
    result = train(cfg, progress=False)
    return {"cfg": cfg, "result": result}


def random_pipeline(workdir: Path, kind: str, objective: ObjectiveConfig | None = None) -> SolarDiffusionPipeline:
    cfg = tiny_config(workdir, workdir / "ds", kind=kind)
    cfg.objective = objective or cfg.objective
    data, ds = load_training_data(cfg)
    torch.manual_seed(0)
    model = build_models(cfg, list(data.summary["class_counts"]))
    pipe = _make_pipeline(cfg, model, data, ds.meta)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------- data

def test_training_uses_only_the_fold_training_split(workdir):
    data, _ = load_training_data(tiny_config(workdir, workdir / "ds"))
    s = data.summary
    assert s["frames_in_window"] == 24                      # April (validation) frames never enter
    assert s["excluded"] == {"stale": 1, "missing_goes_class": 2}
    assert s["frames_used"] == 21 == len(data.frames)
    assert set(s["class_counts"]) == {"B", "C", "M"}
    assert s["train_window"][0].startswith("2012-01-01")


def test_flux_model_uses_log10_of_the_matching_flux_column(workdir):
    data, _ = load_training_data(tiny_config(workdir, workdir / "ds", kind="flux"))
    assert torch.isfinite(data.log_flux).all()
    assert float(data.log_flux.min()) >= np.log10(3e-7) - 1e-6
    assert set(data.summary["flux_quantiles"]) == {"B", "C", "M"}
    assert data.summary["flux_column"] == "goes_flux"


def test_bad_config_is_a_clear_error(workdir, tmp_path):
    with pytest.raises(ConfigError, match="'train.learning_rat'.*not in 'DiffusionTrainConfig'"):
        load_config(None, ["train.learning_rat=1"])
    cfg = tiny_config(workdir, workdir / "ds", out=str(tmp_path / "x"))
    cfg.data.label_column = "nonsense"
    with pytest.raises(TrainError, match="label_column"):
        train(cfg, progress=False)


# ----------------------------------------------------------------------------- training

def test_loss_decreases_on_a_fixed_tiny_batch(workdir):
    cfg = tiny_config(workdir, workdir / "ds")
    data, _ = load_training_data(cfg)
    torch.manual_seed(0)
    model = build_models(cfg, ["B", "C", "M"])
    from solargen.diffusion.loss import DiffusionObjective
    objective = DiffusionObjective(cfg.objective)
    g = torch.Generator().manual_seed(0)
    x0 = data.frames[:8].float()
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    noisy = objective.add_noise(x0, noise, t)
    null = torch.zeros(8, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = objective.loss(model(noisy, t, data.class_index[:8], None, null), x0, noise, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_kill_and_resume_reproduces_the_uninterrupted_run(workdir, trained):
    reference = trained["result"].losses                    # drew sample grids at steps 3 and 6
    assert sorted(reference) == list(range(1, 7))
    grids = sorted(p.name for p in (Path(trained["cfg"].output_dir) / "samples").glob("*.png"))
    assert grids == ["step-0000003.png", "step-0000006.png"]
    cfg = tiny_config(workdir, workdir / "ds", out="killed")
    first = train(cfg, stop_after=4, progress=False)       # "killed" after step 4; checkpoint at 3
    assert first.pipeline_dir is None and sorted(first.losses) == [1, 2, 3, 4]
    resumed = train(cfg, resume="latest", progress=False)
    assert resumed.start_step == 3                          # lost only the step since the checkpoint
    for step in (4, 5, 6):
        assert resumed.losses[step] == reference[step], step
    log = pd.read_csv(Path(cfg.output_dir) / "log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert [p.name for p in (Path(cfg.output_dir) / "checkpoints").iterdir()] == ["step-0000006"]
    with pytest.raises(TrainError, match="already holds a training run"):
        train(cfg, progress=False)
    cfg.train.learning_rate = 1.0
    with pytest.raises(TrainError, match="learning_rate"):
        train(cfg, resume="latest", progress=False)


def test_final_pipeline_carries_the_training_metadata(trained):
    path = trained["result"].pipeline_dir
    check_pipeline_dir(path)
    pipe = SolarDiffusionPipeline.from_pretrained(path)
    meta = pipe.metadata
    assert meta["training"]["fold"] == "t1" and meta["training"]["frames_used"] == 21
    assert meta["synthetic_training_data"] is True
    assert meta["dataset_meta"]["normalisation"]["hi"] == [255.0]
    assert pipe.known_classes == ["B", "C", "M"] and pipe.kind == "class"
    assert not list(path.parent.glob(".pipeline.*"))        # no temporary directory left behind


# ----------------------------------------------------------------------------- pipeline

def test_save_then_load_gives_identical_samples(workdir, trained, tmp_path):
    pipe = SolarDiffusionPipeline.from_pretrained(trained["result"].pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(flare_class=["B", "M"], guidance_scale=2.0, num_inference_steps=4, sampler="ddim")
    a = pipe(generator=torch.Generator().manual_seed(3), **kwargs)
    pipe.save_pretrained(tmp_path / "copy")
    again = SolarDiffusionPipeline.from_pretrained(tmp_path / "copy")
    again.set_progress_bar_config(disable=True)
    b = again(generator=torch.Generator().manual_seed(3), **kwargs)
    np.testing.assert_array_equal(a.normalised, b.normalised)
    assert a.images.shape == (2, 1, SIZE, SIZE)
    np.testing.assert_allclose(a.images, (a.normalised + 1) / 2 * 255, rtol=1e-5, atol=1e-3)
    assert a.flare_class == ["B", "M"]


@pytest.mark.parametrize("kind", ["class", "flux", "both"])
def test_guidance_one_equals_the_conditional_pass(workdir, kind):
    pipe = random_pipeline(workdir, kind)
    cond_args = {"class": ({"flare_class": ["B", "M"]}), "flux": {"goes_flux": [3e-7, 2e-5]},
                 "both": {"goes_flux": [3e-7, 2e-5]}}[kind]
    from solargen.diffusion.conditioning import encode_labels
    with torch.no_grad():
        # give the conditioning non-trivial weights so null and conditional embeddings differ
        for p in pipe.conditioning.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        ci, lf = encode_labels(pipe.conditioning, cond_args.get("flare_class"), cond_args.get("goes_flux"))
        cond = pipe.conditioning(ci, lf)
        null = pipe.conditioning.null_embedding(2)
        assert not torch.allclose(cond, null)
        x = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
        t = torch.tensor(500)
        plain = pipe.unet(x, t, class_labels=cond).sample
        doubled = pipe.guided_output(x, t, cond, null, 1.0)
        torch.testing.assert_close(doubled, plain, rtol=1e-4, atol=1e-5)
        guided = pipe.guided_output(x, t, cond, null, 3.0)
        assert (guided - plain).abs().max() > 1e-4           # the null path changes the result
    run = lambda s: pipe(**cond_args, guidance_scale=s, num_inference_steps=3, sampler="dpm",
                         generator=torch.Generator().manual_seed(0)).normalised
    np.testing.assert_allclose(run(1.0), run(1.0))
    assert np.abs(run(3.0) - run(1.0)).max() > 1e-4


def test_null_condition_rows_ignore_their_inputs(workdir):
    cond: FlareConditioning = random_pipeline(workdir, "both").conditioning
    with torch.no_grad():
        cond.null_flux.add_(1.0)
        ci = torch.tensor([1, 3])
        lf = torch.tensor([-6.5, -4.7])
        null = torch.tensor([True, False])
        out = cond(ci, lf, null)
        ref_null = cond.null_embedding(1)[0]
        torch.testing.assert_close(out[0], ref_null)
        assert not torch.allclose(out[1], ref_null)


def test_unconditional_sampling_uses_the_null_condition(workdir):
    pipe = random_pipeline(workdir, "class")
    out = pipe(batch_size=3, num_inference_steps=2, sampler="ddim",
               generator=torch.Generator().manual_seed(0))
    assert out.normalised.shape == (3, 1, SIZE, SIZE) and out.flare_class == ["", "", ""]
    assert np.isnan(out.goes_flux).all()


def test_samplers_swap_by_name(workdir):
    pipe = random_pipeline(workdir, "class")
    outs = {s: pipe(flare_class=["C"], num_inference_steps=3, sampler=s,
                    generator=torch.Generator().manual_seed(0)).normalised for s in ("ddpm", "ddim", "dpm")}
    assert all(np.isfinite(o).all() for o in outs.values())
    assert np.abs(outs["ddpm"] - outs["ddim"]).max() > 1e-4
    assert type(pipe.scheduler).__name__ == "DDPMScheduler"  # a per-call sampler leaves it alone


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_sampler_swap_keeps_prediction_type_and_is_reproducible(workdir, prediction_type):
    cfg = tiny_config(workdir, workdir / "ds")
    pipe = random_pipeline(workdir, "class", objective=ObjectiveConfig(
        prediction_type=prediction_type))
    assert pipe.scheduler.config.prediction_type == prediction_type
    for name in SAMPLERS:
        pipe_swapped = make_scheduler(name, pipe.scheduler.config)
        assert pipe_swapped.config.prediction_type == prediction_type
        runs = [pipe(flare_class=["C", "M"], num_inference_steps=4, sampler=name,
                     generator=[torch.Generator().manual_seed(s) for s in (0, 1)]).normalised
                for _ in range(2)]
        assert np.isfinite(runs[0]).all()
        np.testing.assert_array_equal(runs[0], runs[1])
    assert cfg.objective == ObjectiveConfig()      # the default recipe is what configs start from


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_are_clear_errors(workdir, tmp_path):
    pipe = random_pipeline(workdir, "class")
    with pytest.raises(ConditioningError, match="unknown to this model.*B, C, M"):
        pipe(flare_class=["X"], num_inference_steps=2)
    with pytest.raises(ConditioningError, match="flare class only"):
        pipe(goes_flux=[1e-5], num_inference_steps=2)
    with pytest.raises(PipelineError, match="sampling steps"):
        pipe(flare_class=["B"], num_inference_steps=0)
    with pytest.raises(PipelineError, match="unknown sampler"):
        pipe(flare_class=["B"], sampler="euler", num_inference_steps=2)
    flux = random_pipeline(workdir, "flux")
    for bad in (0.0, -1e-5, float("nan")):
        with pytest.raises(GoesError):
            flux(goes_flux=[bad], num_inference_steps=2)
    with pytest.raises(PipelineError, match="no such model directory"):
        SolarDiffusionPipeline.from_pretrained(tmp_path / "missing")
    with pytest.raises(PipelineError, match="not a solargen pipeline"):
        SolarDiffusionPipeline.from_pretrained(workdir / "ds")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    with pytest.raises(PipelineError, match="DDPMPipeline"):
        SolarDiffusionPipeline.from_pretrained(tmp_path / "other")


def test_cli_reports_bad_input_without_traceback(workdir, trained, tmp_path, capsys):
    model = str(trained["result"].pipeline_dir)
    assert cli_main(["sample", "--model", model, "--flare-class", "X", "--n", "1", "--steps", "2",
                     "--out", str(tmp_path / "o")]) == 2
    assert "trained on classes B, C, M" in capsys.readouterr().err
    assert cli_main(["sample", "--model", model, "--goes-flux", "nan", "--out", str(tmp_path / "o")]) == 2
    assert "flux" in capsys.readouterr().err
    assert cli_main(["sample", "--model", model, "--flare-class", "B", "--steps", "0",
                     "--out", str(tmp_path / "o")]) == 2
    assert "steps" in capsys.readouterr().err
    assert cli_main(["sample", "--model", str(workdir / "ds"), "--flare-class", "B",
                     "--out", str(tmp_path / "o")]) == 2
    assert "not a solargen pipeline" in capsys.readouterr().err
    # a class learnt from fewer frames than the stated minimum is refused, one line, unless lowered
    assert cli_main(["sample", "--model", model, "--flare-class", "B", "--n", "1", "--steps", "2",
                     "--min-class-frames", "1000000", "--out", str(tmp_path / "o")]) == 2
    assert "not synthesised: class B has" in capsys.readouterr().err


# ----------------------------------------------------------------------------- sampling sets

def test_sample_set_is_independent_of_batch_size(workdir):
    pipe = random_pipeline(workdir, "class")
    kw = dict(flare_class=["B", "C", "M"], seed=5, sampler="ddim", num_inference_steps=3, progress=False)
    one = sample_set(pipe, batch_size=1, **kw)
    three = sample_set(pipe, batch_size=3, **kw)
    np.testing.assert_allclose(one["images"], three["images"], atol=1e-4)
    assert one["seed"].tolist() == [5, 6, 7]
    assert json.loads(one["meta"])["sampling"]["sampler"] == "ddim"


def test_condition_plans(workdir):
    assert split_evenly(10, [1, 1, 1]) == [4, 3, 3] and sum(split_evenly(7, [5, 1])) == 7
    pipe = random_pipeline(workdir, "class")
    plan = balanced_conditions(pipe, 9)["flare_class"]
    assert [plan.count(c) for c in "BCM"] == [3, 3, 3]
    prop = proportional_conditions(pipe, workdir / "ds", 28)["flare_class"]
    assert [prop.count(c) for c in "BCM"] == [10, 9, 9]    # 10 B, 9 C, 9 M labelled frames in ds
    flux = random_pipeline(workdir, "flux")
    fluxes = balanced_conditions(flux, 6, seed=1)["goes_flux"]
    assert len(fluxes) == 6 and 3e-7 <= min(fluxes) and max(fluxes) <= 2e-5 * 1.5 + 1e-12


def test_cli_sample_writes_npz_png_and_fits(trained, tmp_path):
    from astropy.io import fits
    model = str(trained["result"].pipeline_dir)
    out = tmp_path / "samples"
    assert cli_main(["sample", "--model", model, "--balanced", "--n", "3", "--scheduler", "dpm",
                     "--steps", "3", "--guidance", "2", "--seed", "7", "--batch-size", "2",
                     "--out", str(out)]) == 0
    z = load_npz(out / "samples.npz")
    assert z["images"].shape == (3, 1, SIZE, SIZE) and z["images"].dtype == np.float32
    assert z["images"].min() >= -1 and z["images"].max() <= 1
    assert z["flare_class"].tolist() == ["B", "C", "M"] and np.isnan(z["goes_flux"]).all()
    assert z["seed"].tolist() == [7, 8, 9]
    assert json.loads(z["meta"])["dataset_meta"]["synthetic"] is True
    assert len(list((out / "png").glob("*.png"))) == 3 and (out / "grid.png").is_file()
    fits_files = sorted((out / "fits").glob("*.fits"))
    header = fits.getheader(fits_files[2])
    assert (header["FLARECLS"], header["SEED"], header["GUIDANCE"], header["SAMPLER"],
            header["STEPS"], header["MODEL"]) == ("M", 9, 2.0, "dpm", 3, model)
    assert "GOESFLUX" in header
    data = fits.getdata(fits_files[2])
    np.testing.assert_allclose(data, (z["images"][2, 0] + 1) / 2 * 255, atol=1e-3)


def test_dry_run_prints_the_resolved_config(capsys):
    from solargen.train import main as train_main
    assert train_main(["--config", str(CONFIGS / "ddpm-64-class.yaml"), "--set", "train.batch_size=32",
                       "--dry-run"]) == 0
    text = capsys.readouterr().out
    resolved = yaml.safe_load(text)
    assert resolved["train"]["batch_size"] == 32 and resolved["model"]["size"] == "S"
    assert "M parameters" in text
    for name in ("ddpm-64-flux", "ddpm-64-both", "ddpm-128-class", "ddpm-tiny", "ddpm-64-class-gpu",
                 "ddpm-64-class-cpu", "ddpm-64-class-3ch"):
        assert cli_main(["train", "--config", str(CONFIGS / f"{name}.yaml"), "--dry-run"]) == 0


def test_class_latent_model_trains_saves_and_samples(workdir, tmp_path):
    cfg = tiny_config(workdir, workdir / "ds", out="latent", kind="class_latent", latent_dim=4,
                      latent_epochs=1)
    result = train(cfg, progress=False)
    pipe = SolarDiffusionPipeline.from_pretrained(result.pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.kind == "class_latent" and pipe.latent_encoder is not None
    cond = pipe.conditioning
    assert cond.latent_scale_tril.shape == (5, 4, 4) and torch.isfinite(cond.latent_mean).all()
    gens = lambda: [torch.Generator().manual_seed(s) for s in (0, 1)]
    drawn = pipe(flare_class=["B", "M"], num_inference_steps=2, sampler="dpm", generator=gens()).normalised
    again = pipe(flare_class=["B", "M"], num_inference_steps=2, sampler="dpm", generator=gens()).normalised
    np.testing.assert_array_equal(drawn, again)
    # an explicit latent and reference frames (encoded by the pipeline's autoencoder) steer the sample
    frames = np.load(Path(workdir / "ds" / "frames.npy"))[:2].astype(np.float32)
    z = pipe.latent_encoder.encode(torch.from_numpy(frames)).detach().numpy()
    by_latent = pipe(flare_class=["B", "M"], num_inference_steps=2, sampler="dpm", generator=gens(), latent=z)
    by_frames = pipe(flare_class=["B", "M"], num_inference_steps=2, sampler="dpm", generator=gens(),
                     reference_frames=frames)
    np.testing.assert_allclose(by_latent.normalised, by_frames.normalised, atol=1e-5)
    assert np.abs(by_latent.normalised - drawn).max() > 1e-4
    with pytest.raises(PipelineError, match="latent must be 2 x 4"):
        pipe(flare_class=["B", "M"], num_inference_steps=2, latent=np.zeros((2, 3)))
    with pytest.raises(PipelineError, match="takes no latent"):
        random_pipeline(workdir, "class")(flare_class=["B"], num_inference_steps=2, latent=np.zeros((1, 4)))


def test_pipeline_is_importable_from_the_package_root():
    import solargen
    from solargen import SolarDiffusionPipeline as FromRoot
    assert FromRoot is SolarDiffusionPipeline and "SolarDiffusionPipeline" in solargen.__all__
    with pytest.raises(AttributeError):
        solargen.NoSuchThing  # noqa: B018


def test_three_channel_pipeline_saves_loads_and_samples(workdir, tmp_path):
    """171/131/94 together: the model takes and makes C = 3 frames, and each channel comes back
    in its own brightness range."""
    from solargen.data.dataset import load_dataset
    one = load_dataset(workdir / "ds")
    frames = np.concatenate([one.frames, -0.5 * np.asarray(one.frames), np.asarray(one.frames) ** 2], axis=1)
    meta = {**one.meta, "channels": ["171", "131", "94"],
            "normalisation": {"scaling": "linear", "lo": [0.0, 10.0, 100.0], "hi": [255.0, 50.0, 2000.0]}}
    meta = {k: v for k, v in meta.items() if k not in ("format_version", "n_frames")}
    write_dataset(tmp_path / "ds3", frames.astype(np.float32), one.labels, meta, "3 channels\n")
    cfg = tiny_config(tmp_path, tmp_path / "ds3", out="three", max_steps=2)
    cfg.model.channels = 3
    result = train(cfg, progress=False)
    pipe = SolarDiffusionPipeline.from_pretrained(result.pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.config.in_channels == pipe.unet.config.out_channels == 3
    out = pipe(flare_class=["B", "M"], num_inference_steps=2, sampler="dpm",
               generator=torch.Generator().manual_seed(0))
    assert out.normalised.shape == (2, 3, SIZE, SIZE) and out.images.shape == (2, 3, SIZE, SIZE)
    for c, (lo, hi) in enumerate(zip(meta["normalisation"]["lo"], meta["normalisation"]["hi"])):
        assert lo - 1e-3 <= out.images[:, c].min() and out.images[:, c].max() <= hi + 1e-3
