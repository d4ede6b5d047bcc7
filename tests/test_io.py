"""Directory replacement survives a kill at every step: the target is always the complete old or
the complete new directory once `recover_dir` has run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from solargen import io

ROOT = Path(__file__).resolve().parents[1]
OLD = {"a.txt": "old a", "sub/b.txt": "old b", "only-old.txt": "old"}
NEW = {"a.txt": "new a", "sub/b.txt": "new b", "only-new.txt": "new"}


class Killed(BaseException):
    """Stands for SIGKILL: once raised, nothing else runs (not even cleanup)."""


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def _replace_with_kill(monkeypatch: pytest.MonkeyPatch, kill_at: int | None) -> list[str]:
    """Patch os.replace and shutil.rmtree as solargen.io calls them: record each call and, at call
    `kill_at`, die (an rmtree dies half-way, after deleting one file)."""
    calls: list[str] = []
    real_replace, real_rmtree = os.replace, io.shutil.rmtree

    def step(name: str) -> bool:
        if kill_at is not None and len(calls) >= kill_at:
            calls.append(f"{name} (killed)")
            return True
        calls.append(name)
        return False

    def replace(src, dst):
        if step("replace"):
            raise Killed
        real_replace(src, dst)

    def rmtree(path, ignore_errors=False):
        if step("rmtree"):
            files = [p for p in Path(path).rglob("*") if p.is_file()]
            if files:
                files[0].unlink()
            raise Killed
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(io.os, "replace", replace)
    monkeypatch.setattr(io.shutil, "rmtree", rmtree)
    return calls


def _replace(target: Path) -> None:
    with io.atomic_dir(target) as tmp:
        _write(tmp, NEW)


@pytest.mark.parametrize("exists", [True, False], ids=["replace", "first-write"])
def test_a_kill_at_any_step_leaves_the_old_or_the_new_directory(tmp_path, monkeypatch, exists):
    probe = tmp_path / "probe" / "model"
    if exists:
        _write(probe, OLD)
    calls = _replace_with_kill(monkeypatch, None)
    _replace(probe)
    monkeypatch.undo()
    assert _tree(probe) == NEW and len(calls) >= (4 if exists else 3)
    seen = set()
    for k in range(len(calls) + 1):
        target = tmp_path / f"kill-{k}" / "model"
        if exists:
            _write(target, OLD)
        killed = _replace_with_kill(monkeypatch, k if k < len(calls) else None)
        if k < len(calls):
            with pytest.raises(Killed):
                _replace(target)
        else:
            _replace(target)
        monkeypatch.undo()
        io.recover_dir(target)
        state = _tree(target) if target.is_dir() else None
        expected = ([OLD] if exists else [None]) + [NEW]
        assert state in expected, f"killed at {killed[-1]} (step {k}): {state}"
        seen.add("new" if state == NEW else "old")
        # whatever a kill left beside the target is hidden ('.'-prefixed), never a result
        assert [p.name for p in target.parent.iterdir() if not p.name.startswith(".")] == \
            (["model"] if state is not None else [])
        # and the next replacement works and tidies the swap's leftovers
        with io.atomic_dir(target) as tmp:
            _write(tmp, {"c.txt": "next"})
        assert _tree(target) == {"c.txt": "next"}
        assert not (target.parent / ".model.old").exists()
    assert seen == {"old", "new"}


def test_a_failing_block_keeps_the_old_directory_and_no_temporary(tmp_path):
    target = tmp_path / "model"
    _write(target, OLD)
    with pytest.raises(RuntimeError):
        with io.atomic_dir(target) as tmp:
            _write(tmp, {"a.txt": "half"})
            raise RuntimeError("save failed")
    assert _tree(target) == OLD and [p.name for p in tmp_path.iterdir()] == ["model"]


KILLED_BETWEEN_RENAMES = """
import os, sys, time
from pathlib import Path
from solargen import io

target, real_replace = Path(sys.argv[1]), os.replace

def replace(src, dst):
    real_replace(src, dst)
    if Path(dst).name == f".{target.name}.old":       # the first rename is done, the second not
        print("between", flush=True)
        time.sleep(120)

io.os.replace = replace
with io.atomic_dir(target) as tmp:
    (tmp / "a.txt").write_text("new a")
"""


def test_sigkill_between_the_two_renames_is_recovered(tmp_path):
    target = tmp_path / "model"
    _write(target, OLD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(target)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "between"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists() and (tmp_path / ".model.old").is_dir()
    assert io.recover_dir(target) == target and _tree(target) == OLD
    assert not (tmp_path / ".model.old").exists()
