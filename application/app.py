"""solargen studio: a Gradio UI over application.studio (the work itself lives in the packages).

    solargen app  [--model DIR] [--dataset DIR] [--classifier DIR] [--port 7860]
    python app.py [the same options]   (in a checkout; application/app_cli.py parses them)

Pick a pipeline directory (by default the model `solargen quickstart` trained, which learned from
SYNTHETIC data), a flare class (or, for flux models, an X-ray flux), the sampler settings and a
count; see the synthetic suns beside real frames of that class, their std maps and what a fidelity
classifier makes of them; download PNG, NPZ or FITS. Runs offline: analytics and version checks are
off and temporary files go to a directory of the studio's own.
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / f"solargen-studio-{os.getuid()}"))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from application import studio  # noqa: E402
from solargen.data.dataset import to_uint8  # noqa: E402
from solargen.data.goes import GOES_CLASSES, flux_to_class  # noqa: E402
from solargen.diffusion.pipeline import SAMPLERS  # noqa: E402

TITLE = "solargen studio"
WORK_DIR = Path(os.environ["GRADIO_TEMP_DIR"]) / "requests"


def _model_choices(default: str | None, quickstart: str | None) -> list[tuple[str, str]]:
    """The default model first, then every pipeline under ./runs (two levels of run folders)."""
    found = [Path(default)] if default else []
    runs = Path("runs")
    if runs.is_dir():
        found += sorted(p.parent for pattern in ("*/pipeline/model_index.json", "*/*/pipeline/model_index.json")
                        for p in runs.glob(pattern))
    choices, seen = [], set()
    for path in found:
        key = str(path.resolve())
        if key in seen:
            continue
        seen.add(key)
        try:
            info = studio.inspect_model(path)
        except studio.StudioError:
            continue
        tag = "trained on SYNTHETIC data" if info.synthetic else "trained on real data"
        origin = " (quickstart)" if quickstart and key == str(Path(quickstart).resolve()) else ""
        choices.append((f"{path}{origin}: {info.kind}, {tag}", str(path)))
    return choices


def _flux_label(log_flux: float | None) -> str:
    if not isinstance(log_flux, (int, float)) or not np.isfinite(log_flux):
        return ""
    flux = 10 ** float(log_flux)
    return f"flux **{flux:.2e} W m⁻²** = GOES class **{flux_to_class(flux)}**"


def _model_view(model: str, dataset: str) -> tuple:
    """Updates of the model panel and the condition inputs for a model directory."""
    try:
        info = studio.inspect_model(model)
    except studio.StudioError as exc:
        return (f"⚠️ {exc}", gr.update(), gr.update(), gr.update(), gr.update(), dataset)
    missing = [c for c in GOES_CLASSES if c not in info.offered_classes]
    radio = gr.update(choices=list(info.offered_classes), visible=not info.uses_flux,
                      value=info.offered_classes[-1] if info.offered_classes else None,
                      info=_missing_note(info, missing))
    lo, hi = info.log_flux_range()
    slider = gr.update(minimum=lo, maximum=hi, value=info.default_log_flux(), visible=info.uses_flux)
    label = gr.update(value=_flux_label(info.default_log_flux()), visible=info.uses_flux)
    if not dataset and Path(info.dataset).is_dir():
        dataset = info.dataset
    return (info.describe(), radio, slider, label, gr.update(maximum=info.num_train_timesteps), dataset)


def _missing_note(info: studio.ModelInfo, missing: list[str]) -> str | None:
    """Which classes the radio does not offer, and why (not learnt, or too few training frames)."""
    if not missing:
        return None
    return "not offered: " + ", ".join(
        f"{c} ({info.class_counts[c]} training frames < {studio.MIN_CLASS_FRAMES})"
        if c in info.known_classes else f"{c} (not learnt)" for c in missing)


def _panels(images: np.ndarray) -> list[np.ndarray]:
    """(N, C, H, W) in [-1, 1] -> N grey uint8 images; the channels of a multi-channel frame side
    by side (left to right in the model's channel order), one white pixel column apart."""
    u8 = to_uint8(images)
    if u8.shape[1] == 1:
        return list(u8[:, 0])
    gap = np.full((u8.shape[2], 1), 255, np.uint8)
    return [np.concatenate([x for c in range(u8.shape[1]) for x in (frame[c], gap)][:-1], axis=1)
            for frame in u8]


def generate(model: str, dataset: str, classifier: str, flare_class: str | None,
             log_flux: float | None, guidance_scale: float, sampler: str, steps: float, seed: float,
             count: float, progress: gr.Progress = gr.Progress()) -> tuple:
    """Sample `count` images; return the synthetic gallery, real frames of that class, the std-map
    figure, the classifier's probabilities, the download files and a status line."""
    try:
        info = studio.inspect_model(model)
        request = studio.validate(studio.SampleRequest(
            model=model, flare_class=flare_class, log_flux=log_flux, guidance_scale=guidance_scale,
            sampler=sampler, steps=steps, seed=seed, count=count), info)
        progress((0, request.count), desc="sampling", unit="images")
        result = studio.generate(request, progress=lambda done, total: progress(
            (done, total), desc="sampling", unit="images"))
    except studio.StudioError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    letter = studio.requested_letter(request)
    folder = Path(tempfile.mkdtemp(prefix="gen-", dir=_work_dir()))
    seeds = (f"seed {request.seed}" if request.count == 1
             else f"seeds {request.seed}-{request.seed + request.count - 1}")
    notes = [f"{request.count} synthetic {letter} image(s), {request.sampler} {request.steps} steps, "
             f"guidance {request.guidance_scale:g}, {seeds}"]
    if info.synthetic:
        notes.append("model trained on SYNTHETIC data: these are not solar images")
    if len(info.channels) > 1:
        notes.append(f"each image shows AIA {' | '.join(info.channels)} left to right")
    synthetic = [(img, f"{letter} · seed {s}") for img, s in zip(_panels(result["images"]), result["seed"])]

    real, std_path = [], None
    if dataset and str(dataset).strip():
        try:
            frames, times = studio.real_frames(dataset, info, letter, request.count, request.seed)
            real = [(img, f"real {letter} · {t}") for img, t in zip(_panels(frames), times)]
            if not len(frames):
                notes.append(f"the dataset has no frame of class {letter} under `{info.label_column}`")
            std_path = folder / "std_maps.png"
            studio.std_map_figure(frames, result["images"], letter, std_path,
                                  channel_name=f"({', '.join(info.channels)})")
        except studio.StudioError as exc:
            notes.append(f"real frames / std maps: {exc}")
            std_path = None
    else:
        notes.append("no dataset configured: no real frames or std maps")

    table = pd.DataFrame()
    if classifier and str(classifier).strip():
        try:
            table = studio.class_probabilities(classifier, result["images"])
        except studio.StudioError as exc:
            notes.append(f"classifier: {exc}")
    else:
        notes.append("no fidelity classifier configured")
    files = studio.export(result, info.path, folder)
    return (synthetic, real, str(std_path) if std_path else None, table,
            [str(p) for p in files.values()], "  \n".join(notes))


def _work_dir() -> Path:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    return WORK_DIR


def build_app(model: str | None = None, dataset: str | None = None,
              classifier: str | None = None) -> gr.Blocks:
    """The studio's Blocks; defaults come from the last `solargen quickstart` when not given."""
    defaults = studio.quickstart_defaults()
    model = model or defaults.get("model")
    dataset = dataset if dataset is not None else defaults.get("dataset", "")
    classifier = classifier if classifier is not None else defaults.get("classifier", "")
    info = None
    if model:
        try:
            info = studio.inspect_model(model)
        except studio.StudioError:
            info = None
    known = list(info.offered_classes) if info else list(GOES_CLASSES)
    uses_flux = bool(info and info.uses_flux)
    lo, hi = info.log_flux_range() if info else studio.LOG_FLUX_RANGE
    flux0 = info.default_log_flux() if info else -5.0

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\nDiffusion of full-disk solar images conditioned on GOES flare class "
                    "and/or X-ray flux: the model panel says which condition the chosen model takes. "
                    "Pick a model and a condition, then generate.")
        with gr.Row():
            with gr.Column(scale=2):
                model_box = gr.Dropdown(choices=_model_choices(model, defaults.get("model")), value=model,
                                        allow_custom_value=True, label="Model (pipeline directory)")
                with gr.Row():
                    dataset_box = gr.Textbox(value=dataset or "", label="Real dataset directory (optional)")
                    classifier_box = gr.Textbox(value=classifier or "", label="Fidelity classifier directory "
                                                "(optional; <eval out>/models/classifier)")
                load_btn = gr.Button("Load model", size="sm")
            model_md = gr.Markdown(info.describe() if info else
                                   "No model yet: run `solargen quickstart` or enter a pipeline directory.")
        with gr.Row():
            with gr.Column():
                class_radio = gr.Radio(known, value=known[-1] if known else None, label="Flare class",
                                       visible=not uses_flux, info=_missing_note(
                                           info, [c for c in GOES_CLASSES if c not in known]) if info else None)
                flux_slider = gr.Slider(lo, hi, value=flux0, step=0.05, label="log10 X-ray flux (W m⁻²)",
                                        visible=uses_flux)
                flux_md = gr.Markdown(_flux_label(flux0), visible=uses_flux)
                guidance = gr.Slider(0, studio.MAX_GUIDANCE, value=1.0, step=0.1,
                                     label="Guidance scale (1 = plain conditional model)")
                sampler = gr.Radio(list(SAMPLERS), value="ddpm",
                                   label="Sampler (ddpm: ancestral, robust for briefly trained "
                                         "models; dpm / ddim: fast ODE solvers)")
            with gr.Column():
                # precision=0: the API documents integers; the values reach studio.validate unrounded
                # (the generate event skips Gradio's preprocessing), which refuses non-integers
                steps = gr.Number(50, precision=0, label="Steps")
                with gr.Row():
                    seed = gr.Number(precision=0, value=0, label="Seed (image i uses seed + i)")
                    randomise = gr.Button("Randomise seed", size="sm")
                count = gr.Number(precision=0, value=4, label=f"Count (1-{studio.MAX_COUNT})")
                run_btn = gr.Button("Generate", variant="primary", elem_id="generate-button")
        status = gr.Markdown(label="Status")
        with gr.Tabs():
            with gr.Tab("Synthetic vs real"):
                with gr.Row():
                    gallery = gr.Gallery(label="Synthetic", columns=4, height=360, format="png",
                                         elem_id="synthetic-gallery")
                    real_gallery = gr.Gallery(label="Real frames of the same class", columns=4, height=360,
                                              format="png")
            with gr.Tab("Std maps"):
                std_image = gr.Image(label="Pixel-wise std, real vs synthetic", type="filepath")
            with gr.Tab("Classifier"):
                probs = gr.Dataframe(label="Class probabilities from the fidelity classifier")
            with gr.Tab("Downloads"):
                files = gr.File(label="samples.npz, PNG zip, FITS zip", file_count="multiple")

        view_outputs = [model_md, class_radio, flux_slider, flux_md, steps, dataset_box]
        load_btn.click(_model_view, [model_box, dataset_box], view_outputs, api_visibility="private")
        model_box.change(_model_view, [model_box, dataset_box], view_outputs, api_visibility="private")
        flux_slider.change(_flux_label, flux_slider, flux_md, queue=False, show_progress="hidden",
                           api_visibility="private")
        randomise.click(lambda: random.randrange(2 ** 31), None, seed, queue=False, api_visibility="private")
        run_btn.click(generate, [model_box, dataset_box, classifier_box, class_radio, flux_slider, guidance,
                                 sampler, steps, seed, count],
                      [gallery, real_gallery, std_image, probs, files, status], api_name="generate",
                      preprocess=False)   # raw values: studio.validate checks each, one message each
    return demo


def launch(model: str | None = None, dataset: str | None = None, classifier: str | None = None,
           host: str = "127.0.0.1", port: int | None = None, concurrency: int = 2,
           block: bool = True) -> gr.Blocks:
    """Build, queue (at most `concurrency` generations at once) and serve the studio."""
    demo = build_app(model, dataset, classifier)
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                show_error=True, allowed_paths=[str(_work_dir())], footer_links=["api"],
                enable_monitoring=False, ssr_mode=False, mcp_server=False)
    return demo


def serve(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise studio.StudioError(f"--concurrency must be >= 1, got {args.concurrency}")
    if args.model:
        studio.inspect_model(args.model)
    print(f"sampling on {studio.use_device(args.device)}")
    launch(args.model, args.dataset, args.classifier, args.host, args.port, args.concurrency)
    return 0
