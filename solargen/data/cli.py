"""`solargen data ...`: build a dataset from real sources, make the synthetic default, fetch data."""
from __future__ import annotations

import argparse
from pathlib import Path
from solargen.errors import SolargenError


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build, synthesise or fetch datasets")
    cmds = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    _register_build(cmds)
    _register_synthetic(cmds)
    _register_survey(cmds)
    _register_fetch(cmds)


def _register_build(cmds: argparse._SubParsersAction) -> None:
    p = cmds.add_parser("build", help="turn images + GOES flux + a flare catalogue into a dataset dir",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", required=True, type=Path,
                   help="bundle .npz | directory of FITS | directory of PNG/JPG (+ --times CSV) | "
                        "SDOML zarr path or fsspec URL")
    p.add_argument("--times", type=Path, help="CSV of observation times for an image folder "
                                              "(columns: file, t_obs)")
    p.add_argument("--goes", required=True, type=Path, help="GOES XRS series: CSV, netCDF or FITS")
    p.add_argument("--flares", type=Path, help="HEK or SWPC flare list CSV (peak-matched labels)")
    p.add_argument("--cmes", type=Path, help="CDAW CME list CSV (marks flares eruptive/confined)")
    p.add_argument("--size", type=int, default=64, help="output frame size (pixels, square)")
    p.add_argument("--channels", default="171", help="comma-separated AIA channels, e.g. 171,131,94")
    p.add_argument("--scaling", default="linear", choices=("linear", "log", "asinh", "signed"),
                   help="brightness scaling before normalisation to [-1, 1] (signed: values as they "
                        "are, negatives kept, for magnetograms such as HMI Bz)")
    p.add_argument("--peak-tolerance-min", type=float, default=7.0,
                   help="a frame takes a flare's class when it is the first frame at or after the "
                        "HEK peak within this many minutes (7 in the reference paper)")
    p.add_argument("--goes-window-min", type=float, default=5.0,
                   help="GOES flux at the frame time: max 1-8 A flux within +-this many minutes")
    p.add_argument("--norm-folds", default="configs/folds/2012-rolling.yaml",
                   help="non-8-bit sources: percentiles come from the training window of a fold of this file")
    p.add_argument("--norm-fold", default="f1", help="... of this fold")
    p.add_argument("--norm-window", nargs=2, metavar=("START", "END"),
                   help="non-8-bit sources: percentiles from frames in [START, END) UTC instead")
    p.add_argument("--norm-range", nargs=2, type=float, metavar=("LO", "HI"),
                   help="non-8-bit sources: a fixed raw brightness range instead of percentiles")
    p.add_argument("--dark-fraction", type=float, default=0.01,
                   help="skip a frame whose largest black region covers more than this fraction of "
                        "the central disk (blacked-out blocks, missing readouts)")
    p.add_argument("--start", help="first slot time (UTC); default: the source's first frame")
    p.add_argument("--end", help="end of the slots (UTC, exclusive); default: after the last frame")
    p.add_argument("--cadence", help="a regular time axis, e.g. 12min or 1h: each slot takes every "
                                     "channel's nearest frame within --tolerance-min; a slot without "
                                     "one keeps its place, marked absent and reported (default: the "
                                     "first channel's own frame times)")
    p.add_argument("--tolerance-min", type=float,
                   help="channel matching tolerance in minutes (default: half the cadence, or 30)")
    p.add_argument("--part-slots", type=int, default=256,
                   help="slots per part: the unit of parallel, resumable work")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: a process pool; ray: one Ray task a part")
    p.add_argument("--workers", type=int,
                   help="local processes (1: in this process) or, for a local Ray, its CPUs "
                        "(default: all cores)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a local Ray")
    p.add_argument("--out", required=True, type=Path, help="output dataset directory (rerun the same "
                                                           "command to resume an interrupted build)")
    p.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from solargen.data.build import BuildConfig, build_dataset
    config = BuildConfig(
        images=str(args.images), times=args.times, goes=args.goes, flares=args.flares,
        cmes=args.cmes, size=args.size,
        channels=tuple(c.strip() for c in args.channels.split(",") if c.strip()),
        scaling=args.scaling, peak_tolerance_min=args.peak_tolerance_min,
        goes_window_min=args.goes_window_min, norm_folds=args.norm_folds, norm_fold=args.norm_fold,
        norm_window=tuple(args.norm_window) if args.norm_window else None,
        norm_range=tuple(args.norm_range) if args.norm_range else None, dark_fraction=args.dark_fraction,
        start=args.start, end=args.end, cadence=args.cadence, tolerance_min=args.tolerance_min,
        part_slots=args.part_slots)
    ds = build_dataset(config, args.out, executor=args.executor, workers=args.workers,
                       address=args.address)
    print(ds.describe())
    print(f"build report: {Path(args.out) / 'report.md'}")
    return 0


def _register_synthetic(cmds: argparse._SubParsersAction) -> None:
    from solargen.data.synthetic_sun import CHANNEL_LOOKS, SyntheticSunConfig
    d = SyntheticSunConfig()
    p = cmds.add_parser("synthetic", help="write the synthetic embedded-default dataset (procedural, "
                                          "not solar data)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=d.n_frames, help="number of hourly frames")
    p.add_argument("--size", type=int, default=d.size, help="frame size (pixels, square)")
    p.add_argument("--seed", type=int, default=d.seed, help="the realisation (deterministic per seed)")
    p.add_argument("--channels", default=",".join(d.channels),
                   help=f"comma-separated channels to render ({', '.join(CHANNEL_LOOKS)})")
    p.add_argument("--start", default=d.start, help="nominal time of the first frame (UTC)")
    p.add_argument("--flares-per-day", type=float, default=round(d.flares_per_day, 3),
                   help="mean flare rate (default: HEK GOES flares of 2012)")
    p.add_argument("--class-mix", default=",".join(f"{c}:{w:g}" for c, w in zip("ABCMX", d.class_mix)),
                   help="relative weights of A/B/C/M/X flares, e.g. B:0.35,C:0.59,M:0.055,X:0.003 "
                        "(default: HEK 2012 counts)")
    p.add_argument("--power-index", type=float, default=d.power_index,
                   help="peak-flux power law dN/dF ~ F^-index inside each class decade")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--out", type=Path, help="output dataset directory (required unless --dry-run)")
    p.set_defaults(func=_run_synthetic)


def _class_mix(text: str) -> tuple[float, ...]:
    from solargen.data.goes import GOES_CLASSES
    weights = dict.fromkeys(GOES_CLASSES, 0.0)
    for item in filter(None, (t.strip() for t in text.split(","))):
        letter, _, value = item.partition(":")
        if letter.strip().upper() not in weights or not value:
            raise SolargenError(f"--class-mix: {item!r} is not LETTER:WEIGHT with a letter of "
                             f"{'/'.join(GOES_CLASSES)}")
        try:
            weights[letter.strip().upper()] = float(value)
        except ValueError:
            raise SolargenError(f"--class-mix: weight {value!r} of {letter} is not a number") from None
    return tuple(weights.values())


def _run_synthetic(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict
    from solargen.data.synthetic import write_synthetic_dataset
    from solargen.data.synthetic_sun import SyntheticSunConfig
    cfg = SyntheticSunConfig(
        n_frames=args.n, size=args.size, seed=args.seed, start=args.start,
        channels=tuple(c.strip() for c in args.channels.split(",") if c.strip()),
        flares_per_day=args.flares_per_day, class_mix=_class_mix(args.class_mix),
        power_index=args.power_index).check()
    if args.dry_run:
        print(json.dumps(asdict(cfg), indent=2))
        return 0
    if args.out is None:
        raise SolargenError("solargen data synthetic: --out <dataset dir> is required")
    ds = write_synthetic_dataset(cfg, args.out)
    print(ds.describe())
    print(f"build report: {Path(args.out) / 'report.md'}")
    return 0


def _register_fetch(cmds: argparse._SubParsersAction) -> None:
    p = cmds.add_parser("fetch", help="download SDO/AIA images, GOES XRS flux and the HEK "
                                      "flare list for a date range (needs internet)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--start", required=True, help="first day, e.g. 2012-01-01 (UTC)")
    p.add_argument("--end", required=True, help="end (exclusive), e.g. 2012-02-01 (UTC)")
    p.add_argument("--channels", default="171", help="comma-separated AIA channels")
    p.add_argument("--aia-source", default="browse", choices=("browse", "level1"),
                   help="browse: 512 px JPEGs from sdo.gsfc.nasa.gov; level1: 4096 px level-1 "
                        "FITS (DN) via sunpy from the VSO/JSOC (~10-60 MB each; needs sunpy[net])")
    p.add_argument("--goes-satellite", type=int, default=15,
                   help="GOES XRS satellite (13-15: NCEI reprocessed science data, 15 covers "
                        "2010-04 to 2020-03; 16-18: GOES-R)")
    p.add_argument("--retries", type=int, default=4, help="retries per request (exponential backoff)")
    p.add_argument("--out", required=True, type=Path, help="download folder (re-run to resume)")
    p.set_defaults(func=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> int:
    from solargen.data.fetch import Endpoints, fetch
    channels = tuple(c.strip() for c in args.channels.split(",") if c.strip())
    manifest = fetch(args.start, args.end, channels, args.out,
                     Endpoints(goes_satellite=args.goes_satellite), retries=args.retries,
                     aia_source=args.aia_source)
    what = "browse image" if args.aia_source == "browse" else "level-1 record"
    missing = sum(len(v) for v in manifest.get("missing_hours", {}).values())
    for channel, hours in manifest.get("missing_hours", {}).items():
        if hours:
            print(f"AIA {channel}: no {what} within 30 min of {len(hours)} hour(s): "
                  f"{', '.join(hours[:5])}{' ...' if len(hours) > 5 else ''} (see manifest.json)")
    if manifest.get("missing_goes_days"):
        print(f"GOES: no file for {', '.join(manifest['missing_goes_days'])}")
    print(f"{len(manifest['files'])} verified files in {args.out} ({manifest['downloads_this_run']} "
          f"downloaded now); {missing} hours without an image; {manifest['hek_events']} HEK flares")
    images = (f"{args.out}/images --times {args.out}/times.csv" if args.aia_source == "browse"
              else f"{args.out}/fits")
    print(f"next: solargen data build --images {images} --goes {args.out}/goes.csv "
          f"--flares {args.out}/hek_flares.csv --channels {args.channels} --out <dataset dir>")
    return 0


def _register_survey(cmds: argparse._SubParsersAction) -> None:
    from solargen.data.survey import SurveyConfig
    d = SurveyConfig()
    p = cmds.add_parser("synth-survey", help="write a synthetic survey in SDOMLv2's zarr layout "
                                             "(procedural, not solar data; for tests and benchmarks)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--years", type=float, default=d.years, help="span of the survey")
    p.add_argument("--start-year", type=int, default=d.start_year, help="first year group")
    p.add_argument("--channels", default=",".join(d.channels), help="comma-separated AIA channels")
    p.add_argument("--size", type=int, default=d.size, help="frame size (pixels, square)")
    p.add_argument("--cadence", default="1h", help="time between frames, e.g. 12min, 1h")
    p.add_argument("--frames", type=int, help="only the first N frames")
    p.add_argument("--gaps", type=float, default=d.gaps, help="fraction of each channel's frames missing")
    p.add_argument("--corrupt", type=int, default=d.corrupt, help="number of NaN-filled frames")
    p.add_argument("--seed", type=int, default=d.seed, help="the realisation")
    p.add_argument("--out", required=True, type=Path, help="output folder (sdoml.zarr, GOES, flares)")
    p.set_defaults(func=_run_survey)


def _run_survey(args: argparse.Namespace) -> int:
    import pandas as pd
    from solargen.data.survey import SurveyConfig, write_survey
    try:
        hours = pd.Timedelta(args.cadence).total_seconds() / 3600.0
    except ValueError:
        raise SolargenError(f"--cadence {args.cadence!r} is not a duration (e.g. 12min, 1h)") from None
    cfg = SurveyConfig(years=args.years, start_year=args.start_year,
                       channels=tuple(c.strip() for c in args.channels.split(",") if c.strip()),
                       size=args.size, cadence_hours=hours, frames=args.frames, gaps=args.gaps,
                       corrupt=args.corrupt, seed=args.seed)
    summary = write_survey(cfg, args.out)
    print(f"{args.out}/sdoml.zarr: {summary['frames']} slots, channels {', '.join(cfg.channels)}, "
          f"{cfg.size} px (SYNTHETIC); corrupt frames: {', '.join(summary['corrupt']) or 'none'}")
    print(f"see {args.out}/README.md for the build command")
    return 0
