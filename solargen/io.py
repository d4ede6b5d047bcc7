"""Atomic writes and provenance: nothing half-written survives a kill.

Files: `atomic_path` (write beside, then rename). Directories: `atomic_dir` (write a '.'-prefixed
sibling, then `swap_dir`); a reader of such a directory calls `recover_dir` first, which undoes a
swap that a kill stopped between its two renames."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np


def _usual_mode(mode: int) -> int:
    """`mode` less the process umask: the permissions a plain open() or mkdir() would give."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _usual_mode(0o666))  # mkstemp creates 0600
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def recover_dir(target: str | os.PathLike) -> Path:
    """Undo a directory swap a kill stopped between its two renames: when `target` is missing and
    `.<name>.old` exists, rename that back. Returns `target` as a Path."""
    target = Path(target)
    old = _old(target)
    if not target.exists() and old.is_dir():
        os.replace(old, target)
    return target


def swap_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the complete directory `tmp` in place of `target`: target -> .<name>.old, tmp -> target,
    then remove .old. A kill at any point leaves the complete old or the complete new directory
    (after `recover_dir`)."""
    target = recover_dir(target)
    old = _old(target)
    shutil.rmtree(old, ignore_errors=True)      # a kill while removing it left part of an old one
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh empty directory beside `target` ('.'-prefixed, so what a kill leaves of it
    never passes for a result); swap it onto `target` only if the block succeeds."""
    target = recover_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, _usual_mode(0o777))           # mkdtemp creates 0700
    try:
        yield tmp
        swap_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path,)):
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The current git commit of the solargen checkout (with '+dirty' when modified), or 'unknown'."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command that started this process, shell-quoted (a script as `python <path>`)."""
    if not sys.argv:
        return "python"
    script = Path(sys.argv[0])
    if script.suffix == ".py":
        try:
            prog = f"python {script.resolve().relative_to(Path.cwd())}"
        except ValueError:
            prog = f"python {script}"
    else:
        prog = script.name
    return " ".join([prog, *map(shlex.quote, sys.argv[1:])])


def provenance() -> dict[str, str]:
    return {"command": command_line(), "git_commit": git_commit()}


COMMAND_FILE = "command.txt"


def write_command(folder: str | os.PathLike, provenance_record: dict[str, str] | None = None,
                  notes: Sequence[str] = ()) -> Path:
    """command.txt of a results folder, one format everywhere: the command, `git commit: <sha>`,
    then any notes (one a line). Default: this process's provenance()."""
    record = provenance_record or provenance()
    path = Path(folder) / COMMAND_FILE
    write_text(path, "\n".join([record["command"], f"git commit: {record['git_commit']}", *notes]) + "\n")
    return path
