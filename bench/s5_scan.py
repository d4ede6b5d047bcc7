"""S5 parallel scan against a sequential loop and torch's LSTM at 24, 72 and 672 steps.

    python bench/s5_scan.py                 # full: batch 32, width 128, state 128, 5 repeats
    python bench/s5_scan.py --quick         # smoke: batch 8, width 64, state 64, 2 repeats

For each history length and method (S5 parallel scan, the same S5 layer as a Python loop over
time, nn.LSTM of the same width) it times inference (forward, no grad) and training (forward +
backward of a mean-square loss), median over repeats after one warm-up, and measures memory:
bytes of tensors saved for backward (every device) and peak allocated memory (CUDA only).
Writes results.json, table.md and command.txt to docs/results/<date>-s5-scan/ (or --out).
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecasting.s5 import S5  # noqa: E402
from solargen import io  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of tensors autograd keeps for the backward pass of fn()."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def measure(method: str, length: int, batch: int, width: int, state: int, repeats: int,
            device: torch.device) -> dict[str, float | int | str]:
    torch.manual_seed(0)
    if method == "lstm":
        layer = torch.nn.LSTM(width, width, batch_first=True).to(device)
        forward = lambda u: layer(u)[0]  # noqa: E731
    else:
        layer = S5(width, state).to(device)
        mode = "parallel" if method == "s5-scan" else "sequential"
        forward = lambda u: layer(u, mode=mode)  # noqa: E731
    u = torch.randn(batch, length, width, device=device)

    def infer() -> None:
        with torch.no_grad():
            forward(u)

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        forward(u).square().mean().backward()

    row: dict[str, float | int | str] = {"method": method, "steps": length}
    row["inference_ms"] = 1e3 * _median_time(infer, repeats, device)
    row["train_ms"] = 1e3 * _median_time(step, repeats, device)
    row["saved_for_backward_mb"] = _saved_bytes(lambda: forward(u).square().mean()) / 2**20
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize()
        row["peak_train_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return row


def table(rows: list[dict]) -> str:
    cols = [c for c in rows[0] if c not in ("method", "steps")]
    lines = ["| steps | method | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        lines.append(f"| {r['steps']} | {r['method']} | "
                     + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, 2 repeats (about a minute)")
    p.add_argument("--lengths", default="24,72,672")
    p.add_argument("--batch", type=int)
    p.add_argument("--width", type=int, help="model width H (S5 input/output, LSTM hidden)")
    p.add_argument("--state", type=int, help="S5 HiPPO state size N (P = N/2 complex states)")
    p.add_argument("--repeats", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    quick = args.quick
    batch = args.batch or (8 if quick else 32)
    width = args.width or (64 if quick else 128)
    state = args.state or (64 if quick else 128)
    repeats = args.repeats or (2 if quick else 5)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lengths = [int(x) for x in args.lengths.split(",")]
    rows = []
    for length in lengths:
        for method in ("s5-scan", "s5-loop", "lstm"):
            rows.append(measure(method, length, batch, width, state, repeats, device))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    out = args.out or ROOT / "docs" / "results" / f"{dt.date.today():%Y-%m-%d}-s5-scan"
    setup = {"quick": quick, "batch": batch, "width": width, "state_size": state, "repeats": repeats,
             "device": str(device), "threads": args.threads, "torch": torch.__version__,
             "machine": platform.processor() or platform.machine(),
             "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    prov = io.provenance()
    io.write_json(out / "results.json", {"setup": setup, "rows": rows, "provenance": prov})
    io.write_text(out / "table.md", f"# S5 scan vs loop vs LSTM\n\nsetup: {setup}\n\n"
                  "Times are medians in milliseconds for one batch; memory in MiB.\n\n" + table(rows))
    io.write_command(out, prov)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
