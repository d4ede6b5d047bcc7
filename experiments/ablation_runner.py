"""Running an ablation grid: in this process (`local`) or as Ray tasks (`ray`), resumable and safe
for concurrent runners.

Every cell is claimed before it runs (an exclusive lock file `<out>/locks/<cell>.lock` holding the
host and pid of its runner) and its result is written atomically to `<out>/cells/<cell>.json`. A
finished cell is never run again; a cell claimed by a live runner is left to it; a claim whose
process is dead (kill -9, a lost Ray worker) is taken over. So a rerun, a resume after kill -9 and
two runners on one output directory each finish with every cell computed exactly once. A fold's
generator is trained under a claim of its own (other runners wait for it), and on Ray as a task the
cells of that fold depend on.

    run_ablation(config, out)                                  # local
    run_ablation(config, out, executor="ray", address="auto")  # a running Ray cluster
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from experiments.ablation import (STATE_FILE, AblationConfig, AblationError, Cell, cache_root,
                                  cell_config, cell_path, check_config, ensure_generator,
                                  ensure_synthetic_set, generator_record_path, plan_cells, run_cell)
from experiments.ablation_cost import describe_plan, estimate_cost
from forecasting.augment import get_strategy
from forecasting.tasks import get_task
from forecasting.fold_data import FoldData, prepare_data
from solargen import io
from solargen.data.dataset import load_dataset
from solargen.data.splits import load_folds

EXECUTORS = ("local", "ray")
LOCKS_DIR = "locks"


# ----------------------------------------------------------------------------- claims

class Claim:
    """An exclusive claim on a piece of work: a lock file created with O_EXCL. A lock whose holder
    is a dead process on this host (or older than `stale_after` seconds) is taken over."""

    def __init__(self, path: Path, stale_after: float = 24 * 3600):
        self.path, self.stale_after, self.held = Path(path), stale_after, False

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):                        # a second try after removing a stale claim
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    return False
                tomb = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
                try:
                    os.rename(self.path, tomb)     # only one runner wins the take-over
                except FileNotFoundError:
                    continue
                tomb.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, fh)
            self.held = True
            return True
        return False

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _stale(self) -> bool:
        info = self.holder()
        if info is None:                          # unreadable: written by a process killed mid-write
            try:
                return time.time() - self.path.stat().st_mtime > 5
            except FileNotFoundError:
                return True
        if info.get("host") == socket.gethostname():
            try:
                os.kill(int(info["pid"]), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        return time.time() - float(info.get("time", 0)) > self.stale_after

    def wait(self, poll: float = 2.0) -> "Claim":
        """Block until the claim is ours (its live holder released it, or it died)."""
        while not self.acquire():
            time.sleep(poll)
        return self

    def __enter__(self) -> "Claim":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ----------------------------------------------------------------------------- cells

@dataclass
class Context:
    """What cells of one runner process share: the dataset, folds, prepared fold data and the
    generator records."""

    config: AblationConfig
    out: Path
    data: dict[tuple, FoldData] = field(default_factory=dict)
    generators: dict[tuple, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ds = load_dataset(self.config.data)
        self.folds = load_folds(self.config.folds)
        self.cache = cache_root(self.config, self.out)


def finished(out: Path, cell: Cell, config: AblationConfig) -> bool:
    path = cell_path(out, cell)
    return path.is_file() and io.read_json(path).get("fingerprint") == config.fingerprint()


def generator_for(ctx: Context, fold_name: str, column: str) -> dict[str, Any]:
    """The fold's generator record, made under a claim: a runner that finds another training it
    waits, then reuses its result (or resumes its checkpoints if it died)."""
    key = (fold_name, column)
    if key not in ctx.generators:
        with Claim(ctx.out / LOCKS_DIR / f"generator-{fold_name}-{column}.lock").wait():
            ctx.generators[key] = ensure_generator(ctx.config, ctx.ds, ctx.folds.get(fold_name), column,
                                                   ctx.cache)
    return ctx.generators[key]


def execute(ctx: Context, cell: Cell) -> bool:
    """Run one cell unless it is finished or claimed by a live runner; True when this call ran it."""
    config, out = ctx.config, ctx.out
    if finished(out, cell, config):
        return False
    with Claim(out / LOCKS_DIR / f"{cell.id}.lock") as claim:
        if not claim.held or finished(out, cell, config):
            return False
        key = (cell.task, cell.fold, cell.model)
        if key not in ctx.data:
            ctx.data = {key: prepare_data(cell_config(config, cell, out))}   # one fold's data at a time
        generator, synthetic_path = None, None
        if get_strategy(cell.strategy).synthetic:
            generator = generator_for(ctx, cell.fold, get_task(cell.task).column)
            with Claim(out / LOCKS_DIR / f"synthetic-{generator['key']}-set{cell.set_index}.lock").wait():
                synthetic_path = ensure_synthetic_set(config, generator, cell.set_index, ctx.cache)
        result = run_cell(config, cell, ctx.data[key], out, synthetic_path, generator)
        result["computed_by"] = {"host": socket.gethostname(), "pid": os.getpid()}
        io.write_json(cell_path(out, cell), result)
    return True


# ----------------------------------------------------------------------------- executors

def run_local(config: AblationConfig, cells: list[Cell], out: Path, progress: bool) -> list[str]:
    ctx = Context(config, out)
    ran = []
    bar = tqdm(cells, desc=f"ablation {config.name}", unit="cell", disable=not progress)
    for cell in bar:
        bar.set_postfix_str(cell.id, refresh=False)
        if execute(ctx, cell):
            ran.append(cell.id)
    return ran


_WORKER_CONTEXT: dict[str, Context] = {}


def _ray_cell(config: AblationConfig, out: str, cell: Cell, threads: int,
              generator: dict[str, Any] | None) -> bool:
    """A Ray task: one cell, in a worker that keeps its Context between tasks."""
    import torch
    torch.set_num_threads(max(1, threads))
    key = json.dumps([config.fingerprint(), out])
    ctx = _WORKER_CONTEXT.get(key) or _WORKER_CONTEXT.setdefault(key, Context(config, Path(out)))
    if generator is not None:
        ctx.generators[(cell.fold, get_task(cell.task).column)] = generator
    return execute(ctx, cell)


def _ray_generator(config: AblationConfig, out: str, fold: str, column: str, threads: int) -> dict:
    """A Ray task: one fold's generator (the cells of that fold depend on its result)."""
    import torch
    torch.set_num_threads(max(1, threads))
    return generator_for(Context(config, Path(out)), fold, column)


def run_ray(config: AblationConfig, cells: list[Cell], out: Path, address: str | None,
            progress: bool) -> list[str]:
    """Every cell a Ray task with the config's resource request; generators as tasks first."""
    try:
        import ray
    except ImportError:
        raise AblationError("--executor ray needs Ray: pip install -c constraints.txt 'solargen[ray]'") from None
    r = config.resources
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    generator_task = ray.remote(num_cpus=r.generator_cpus, num_gpus=r.generator_gpus,
                                max_retries=r.max_retries)(_ray_generator)
    cell_task = ray.remote(num_cpus=r.cell_cpus, num_gpus=r.cell_gpus, max_retries=r.max_retries)(_ray_cell)
    needs = {(c.fold, get_task(c.task).column) for c in cells if get_strategy(c.strategy).synthetic}
    generators = {k: generator_task.remote(config, str(out), *k, int(r.generator_cpus)) for k in sorted(needs)}
    refs = {cell_task.remote(config, str(out), c, int(r.cell_cpus),
                             generators.get((c.fold, get_task(c.task).column))): c for c in cells}
    ran, pending = [], list(refs)
    with tqdm(total=len(refs), desc=f"ablation {config.name} (ray)", unit="cell", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            if ray.get(done[0]):
                ran.append(refs[done[0]].id)
            bar.update(1)
    return ran


# ----------------------------------------------------------------------------- the run

def claim_output(config: AblationConfig, out: Path) -> None:
    """Mark `out` as this ablation's (refusing one made with other settings)."""
    state = out / STATE_FILE
    fingerprint = config.fingerprint()
    if state.is_file():
        old = io.read_json(state).get("fingerprint")
        if old != fingerprint:
            raise AblationError(f"{state}: this output directory holds an ablation with different "
                                f"settings (fingerprint {old}, now {fingerprint}); finished cells "
                                "would not be comparable. Use a new --out")
    io.write_json(state, {"fingerprint": fingerprint, "config": asdict(config), **io.provenance()})


def refuse_several_processes() -> None:
    """The grid is one runner's (or Ray's) to spread: under `accelerate launch` with several
    processes every rank would run it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        raise AblationError(f"the ablation runs as one process (this is one of {world} launched by "
                            "accelerate/torchrun); run `solargen ablate` directly, with --executor ray "
                            "to spread its cells over GPUs or machines")


def run_ablation(config: AblationConfig, out_dir: str | Path, dry_run: bool = False,
                 estimate: bool = True, progress: bool = True, executor: str = "local",
                 address: str | None = None, wait_poll: float = 5.0) -> dict[str, Any]:
    """Run every unfinished cell (or, with dry_run, only plan and estimate), then write the report
    once every cell is finished (cells other runners hold are waited for).
    Returns {"cells", "ran", "skipped", "report"} (dry run: {"cells", "estimate", "plan"})."""
    out = Path(out_dir)
    check_config(config)
    if executor not in EXECUTORS:
        raise AblationError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    cells = plan_cells(config)
    if dry_run:
        est = estimate_cost(config, cells) if estimate else None
        return {"cells": [c.id for c in cells], "estimate": est,
                "plan": describe_plan(config, cells, est, out)}
    refuse_several_processes()
    claim_output(config, out)
    load_folds(config.folds).check(max(get_task(t).horizon_hours for t in config.tasks))
    todo = [c for c in cells if not finished(out, c, config)]
    ran = (run_local(config, todo, out, progress) if executor == "local"
           else run_ray(config, todo, out, address, progress))
    while not all(finished(out, c, config) for c in cells):   # cells another runner holds
        time.sleep(wait_poll)
    results = [io.read_json(cell_path(out, c)) for c in cells]
    from experiments.ablation_report import write_report
    report = write_report(config, results, out, generation_costs(config, out, results))
    return {"cells": [c.id for c in cells], "ran": ran, "skipped": len(cells) - len(ran),
            "report": report}


def generation_costs(config: AblationConfig, out: Path, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seconds spent training each generator and sampling each synthetic set the cells used."""
    from solargen.diffusion.sample import load_npz
    cache, costs, seen = cache_root(config, out), [], set()
    for r in results:
        g = r.get("generator")
        if not g or g["key"] in seen:
            continue
        seen.add(g["key"])
        record = io.read_json(generator_record_path(cache, g["key"]))
        sampling = []
        for npz in sorted((cache / "synthetic" / g["key"]).glob("*.npz")):
            meta = json.loads(load_npz(npz)["meta"])["sampling"]
            sampling.append({"file": npz.name, "images": meta["n"], "seconds": meta.get("seconds"),
                             "device": meta.get("device", "cpu")})
        costs.append({"key": g["key"], "fold": g["fold"], "train_seconds": record["train_seconds"],
                      "device": record["device"], "sampling": sampling})
    return costs
