"""One table from several `solargen forecast cv` runs, set beside the seeds' reported numbers.

    python bench/cv_table.py runs/forecast/deit-binary-daily runs/forecast/ssm-4class-24h ... \\
        --out docs/results/<date>-forecast-cv-cpu

Copies each run's cv.json / cv.md and fold-f1 test figures into <out>/<run name>/ and writes
table.md (mean ± std over folds of every run) and command.txt (this command and the git commit).
The reference column quotes ../shared/spec/mission.md; the protocols differ (see the report).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solargen import io  # noqa: E402

METRICS = ("gmgs", "tss_ge_m", "hss_ge_m", "bss_ge_m", "recall_ge_m", "precision_ge_m")
# what the seeds report for the closest protocol (mission.md, "The reference results")
REFERENCE = {
    ("deit", "binary-24h-daily"): "TSS 0.35 ± 0.02, HSS 0.18 ± 0.02 (DDPM paper, with synthetic M/X; SDOML 2011-2019)",
    ("vit-lstm", "binary-24h"): "TSS 0.61 (>= M; ViT+LSTM paper, 12-layer ViT, AR-wise splits)",
    ("ssm", "4class-24h"): "GMGS 0.582 ± 0.032, BSS>=M 0.334, TSS>=M 0.543 (Deep SWM, 10 channels, 2011-2021)",
    ("ssm", "4class-72h"): "no number in the seed text (FLARE-SSM abstract only)",
}


def _fmt(mean: dict, std: dict, key: str) -> str:
    if key not in mean or mean[key] != mean[key]:          # absent or NaN
        return "n/a"
    return f"{mean[key]:.3f} ± {std.get(key, float('nan')):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output dirs of `solargen forecast cv`")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    rows = ["| run | model (size) | task | loss | data | input frames | folds (test n) | epochs | "
            + " | ".join(METRICS) + " | seeds report |",
            "|" + "---|" * (len(METRICS) + 9)]
    for run in args.runs:
        cv = io.read_json(run / "cv.json")
        c = cv["config"]
        dest = args.out / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("cv.json", "cv.md"):
            shutil.copy2(run / name, dest / name)
        for fig in sorted((run / "f1" / "test").glob("*.png")):
            shutil.copy2(fig, dest / f"f1-{fig.name}")
        folds = ", ".join(f"{k} ({v['n']})" for k, v in cv["folds"].items())
        epochs = f"{c['epochs']}" + (f", <= {c['max_batches']} batches" if c.get("max_batches") else "")
        history = c.get("history") or 1
        frames = "1" if history == 1 else f"{history} every {c.get('cadence_hours', 1.0):g} h"
        rows.append(f"| {run.name} | {c['model']} ({c['size']}) | {c['task']} | {c['loss']['name']} | "
                    f"{Path(c['data']).name} | {frames} | {folds} | {epochs} | "
                    + " | ".join(_fmt(cv["mean"], cv["std"], m) for m in METRICS)
                    + f" | {REFERENCE.get((c['model'], c['task']), '')} |")
    io.write_text(args.out / "table.md", "\n".join(rows) + "\n")
    prov = io.provenance()
    io.write_command(args.out, prov)
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
