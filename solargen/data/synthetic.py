"""`solargen data synthetic`: a dataset directory from the synthetic Sun (solargen.data.synthetic_sun),
in exactly the layout of `solargen data build`, with its GOES series and flare list, marked
SYNTHETIC everywhere."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from solargen import io
from solargen.data.dataset import Normalisation, SolarDataset, write_dataset
from solargen.data.goes import GOES_CLASSES
from solargen.data.synthetic_sun import SyntheticSun, SyntheticSunConfig

SOURCE = "synthetic embedded default (solargen.data.synthetic; procedural, not solar observations)"


def write_synthetic_dataset(cfg: SyntheticSunConfig, out: str | Path, progress: bool = True) -> SolarDataset:
    """`solargen data synthetic`: a dataset dir in exactly the layout `solargen data build` writes,
    labelled by the same rules, marked synthetic; plus sources/ with the GOES series and flare list
    (the CSV layouts `solargen data build` reads) for inspection."""
    from solargen.data.build import render_report
    from solargen.data.labels import label_frames

    out = Path(out)
    sun = SyntheticSun(cfg)
    frames = sun.render_all(progress=progress)
    goes, events = sun.goes(), sun.events()
    labels, counts = label_frames(sun.times, goes, events)
    labels["stale"] = False
    labels["origin"] = [f"synthetic frame {i}" for i in range(len(labels))]
    write_sources(out / "sources", goes, events)
    norm = Normalisation("linear", (0.0,) * len(cfg.channels), (255.0,) * len(cfg.channels))
    letters = events["goes_class"].str[0].value_counts()
    meta = {
        "source": SOURCE, "synthetic": True, "channels": list(cfg.channels), "size": cfg.size,
        "scaling": "linear", "normalisation": norm.to_dict(),
        "normalisation_note": "fixed 0-255 brightness scale of the synthetic renderer (the browse scale)",
        "classes": list(GOES_CLASSES), "label_rules": counts,
        "goes_file": "sources/goes_xrs_5min.csv (synthetic 5-min series)",
        "goes_coverage": [goes.index[0], goes.index[-1]],
        "flare_catalogue": f"sources/flares.csv (synthetic flare list, {len(events)} flares)",
        "cme_catalogue": None, "n_read": len(labels), "n_skipped": 0, "skipped": [],
        "skipped_events": [],
        "synthetic_config": asdict(cfg),
        "synthetic_summary": {
            "regions_born": int(len(sun.regions)), "flares": int(len(events)),
            "flares_by_class": {c: int(letters.get(c, 0)) for c in GOES_CLASSES},
        },
        **io.provenance(),
    }
    report = render_report(meta, labels) + _report_section(cfg, sun, events)
    return write_dataset(out, norm.normalise(frames), labels, meta, report)


def write_sources(folder: Path, goes: pd.DataFrame, events: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(folder / "goes_xrs_5min.csv") as tmp:
        pd.DataFrame({"time": goes.index.strftime("%Y-%m-%dT%H:%M:%S"),
                      "xrsa": goes["xrsa"].map("{:.4e}".format),
                      "xrsb": goes["xrsb"].map("{:.4e}".format)}).to_csv(tmp, index=False)
    fmt = "%Y-%m-%dT%H:%M:%S"
    with io.atomic_path(folder / "flares.csv") as tmp:
        pd.DataFrame({"GEV_START": events["start"].dt.strftime(fmt),
                      "GEV_PEAK": events["peak"].dt.strftime(fmt),
                      "GEV_END": events["end"].dt.strftime(fmt),
                      "GOES_CLASS": events["goes_class"], "AIA_LOC": events["location"],
                      "AR_NOAANUM": events["noaa_ar"]}).to_csv(tmp, index=False)


def _report_section(cfg: SyntheticSunConfig, sun: SyntheticSun, events: pd.DataFrame) -> str:
    letters = events["goes_class"].str[0].value_counts()
    days = cfg.n_frames * cfg.cadence_hours / 24.0
    mix = ", ".join(f"{c} {p:.3f}" for c, p in zip(GOES_CLASSES, cfg.class_probabilities))
    lines = [
        "", "## Synthetic generator (solargen.data.synthetic)", "",
        "These frames, the GOES series and the flare list are procedural: a model of active "
        "regions, rotation and flares, not observations. No result on them is a solar result.", "",
        f"- {cfg.n_frames} frames every {cfg.cadence_hours} h from {cfg.start} (nominal dates), "
        f"seed {cfg.seed}, {cfg.size} x {cfg.size}, channels {', '.join(cfg.channels)}",
        f"- active regions: {len(sun.regions)} born over the simulated window, belts "
        f"{cfg.belt_deg[0]:g}-{cfg.belt_deg[1]:g} deg, {cfg.regions_per_day:g}/day",
        f"- flares with peaks in the GOES series: {len(events)} "
        f"({', '.join(f'{c} {int(letters.get(c, 0))}' for c in GOES_CLASSES)}); configured mean "
        f"rate {cfg.flares_per_day:.2f}/day, class mix {mix}",
        f"- frames cover {days:.1f} days; the GOES series runs 73 h past the last frame so every "
        "frame has its 72 h label",
        "- `sources/goes_xrs_5min.csv` and `sources/flares.csv` hold the series and the list in "
        "the layouts `solargen data build` reads",
        "", "Configuration:", "", "```json", json.dumps(asdict(cfg), indent=1), "```", "",
    ]
    return "\n".join(lines)
