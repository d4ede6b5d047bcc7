"""`solargen quickstart` (the main job on the embedded default) and `solargen app` (the studio)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="synthetic data -> diffusion model -> samples -> evaluation "
                                          "-> ablation -> one report (CPU, offline)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Run solargen's main job end to end; a second run reuses every "
                                   "finished stage. Presets are documented in solargen/quickstart.py.")
    p.add_argument("--out", default="runs/quickstart", help="output directory")
    p.add_argument("--data", default="", help="a dataset directory (`solargen data build`) instead of "
                                              "the synthetic default; larger defaults apply")
    p.add_argument("--tiny", action="store_true", help="seconds-long run with every artefact (tests)")
    p.add_argument("--folds", help="folds YAML (default: derived from the data for the synthetic "
                                   "default, configs/folds/2012-rolling.yaml with --data)")
    p.add_argument("--fold", help="fold whose training split the model learns from (default f1)")
    p.add_argument("--train-steps", type=int, help="diffusion training steps (overrides the preset)")
    p.add_argument("--seed", type=int, help="seed of every stage (default 0)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings and exit")
    p.set_defaults(func=run_quickstart_command)

    a = sub.add_parser("app", help="open the Gradio studio (default model: the quickstart's)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_app_arguments(a)
    a.set_defaults(func=run_app_command)


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `solargen app` and `python app.py`."""
    p.add_argument("--model", help="pipeline directory (default: the last `solargen quickstart` model)")
    p.add_argument("--dataset", help="real dataset directory for the real frames and std maps "
                                     "(default: the model's training dataset when present)")
    p.add_argument("--classifier", help="fidelity classifier directory (<eval out>/models/classifier)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (loopback by default)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--concurrency", type=int, default=2, help="generations running at once (queue)")


def run_quickstart_command(args: argparse.Namespace) -> int:
    from solargen.quickstart import dry_run, preset, run_quickstart, summary
    changes = {k: v for k, v in (("folds", args.folds), ("fold", args.fold), ("seed", args.seed))
               if v is not None}
    config = preset(out=args.out, data=args.data, tiny=args.tiny, **changes)
    if args.train_steps is not None:
        config.train_overrides = [*config.train_overrides, f"train.max_steps={args.train_steps}"]
    if args.dry_run:
        print(dry_run(config), end="")
        return 0
    run_quickstart(config)
    print(summary(config))
    return 0


def _app_module():
    """app.py of the solargen checkout (the UI lives at the repository root, beside the packages)."""
    path = Path(__file__).resolve().parents[1] / "app.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the studio's app.py is missing (it ships with the solargen "
                                "checkout; run `python app.py` there)")
    spec = importlib.util.spec_from_file_location("solargen_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_app_command(args: argparse.Namespace) -> int:
    return _app_module().serve(args)
