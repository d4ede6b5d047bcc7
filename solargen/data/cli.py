"""`solargen data ...`: build a dataset from real sources, make the synthetic default, fetch data."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build, synthesise or fetch datasets")
    cmds = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    _register_build(cmds)
    _register_synthetic(cmds)
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
    p.add_argument("--scaling", default="linear", choices=("linear", "log", "asinh"),
                   help="brightness scaling before normalisation to [-1, 1]")
    p.add_argument("--peak-tolerance-min", type=float, default=7.0,
                   help="a frame takes a flare's class when it is the first frame at or after the "
                        "HEK peak within this many minutes (7 in the reference paper)")
    p.add_argument("--goes-window-min", type=float, default=5.0,
                   help="GOES flux at the frame time: max 1-8 A flux within +-this many minutes")
    p.add_argument("--out", required=True, type=Path, help="output dataset directory")
    p.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from solargen.data.build import BuildConfig, build_dataset
    config = BuildConfig(
        images=str(args.images), times=args.times, goes=args.goes, flares=args.flares,
        cmes=args.cmes, size=args.size,
        channels=tuple(c.strip() for c in args.channels.split(",") if c.strip()),
        scaling=args.scaling, peak_tolerance_min=args.peak_tolerance_min,
        goes_window_min=args.goes_window_min)
    ds = build_dataset(config, args.out)
    print(ds.describe())
    print(f"build report: {Path(args.out) / 'report.md'}")
    return 0


def _register_synthetic(cmds: argparse._SubParsersAction) -> None:
    from solargen.data.synthetic import SyntheticSunConfig
    d = SyntheticSunConfig()
    p = cmds.add_parser("synthetic", help="write the synthetic embedded-default dataset (not solar data)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=d.n_frames, help="number of hourly frames")
    p.add_argument("--size", type=int, default=d.size, help="frame size (pixels)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--flares-per-region-day", type=float, default=d.flares_per_region_day,
                   help="flare rate of a full-size, fully complex region (sets the class mix)")
    p.add_argument("--power-index", type=float, default=d.power_index,
                   help="flare peak-flux power law dN/dF ~ F^-index (larger: rarer M and X)")
    p.add_argument("--out", required=True, type=Path, help="output dataset directory")
    p.set_defaults(func=_run_synthetic)


def _run_synthetic(args: argparse.Namespace) -> int:
    from solargen.data.synthetic import SyntheticSunConfig, write_synthetic_dataset
    cfg = SyntheticSunConfig(n_frames=args.n, size=args.size, seed=args.seed,
                             flares_per_region_day=args.flares_per_region_day,
                             power_index=args.power_index)
    ds = write_synthetic_dataset(cfg, args.out)
    print(ds.describe())
    print(f"build report: {Path(args.out) / 'report.md'}")
    return 0


def _register_fetch(cmds: argparse._SubParsersAction) -> None:
    p = cmds.add_parser("fetch", help="download SDO/AIA browse images, GOES XRS flux and the HEK "
                                      "flare list for a date range (needs internet)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--start", required=True, help="first day, e.g. 2012-01-01 (UTC)")
    p.add_argument("--end", required=True, help="end (exclusive), e.g. 2012-02-01 (UTC)")
    p.add_argument("--channels", default="171", help="comma-separated AIA channels")
    p.add_argument("--out", required=True, type=Path, help="download folder (re-run to resume)")
    p.set_defaults(func=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> int:
    from solargen.data.fetch import fetch
    channels = tuple(c.strip() for c in args.channels.split(",") if c.strip())
    manifest = fetch(args.start, args.end, channels, args.out)
    missing = sum(len(v) for v in manifest.get("missing_hours", {}).values())
    print(f"{len(manifest['files'])} verified files in {args.out} ({manifest['downloads_this_run']} "
          f"downloaded now); {missing} hours without an image; {manifest['hek_events']} HEK flares")
    print(f"next: solargen data build --images {args.out}/images --times {args.out}/times.csv "
          f"--goes {args.out}/goes.csv --flares {args.out}/hek_flares.csv --channels {args.channels} "
          f"--out <dataset dir>")
    return 0
