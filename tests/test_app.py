"""The Gradio studio on loopback: the sampling endpoint through gradio_client, readable errors,
ten concurrent requests, and a real headless Chromium clicking Generate.

The model is the one `solargen quickstart --tiny` trains once per session (tests/test_quickstart.py).
"""
from __future__ import annotations

import base64
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_quickstart import tiny_quickstart  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_module(tmp_path_factory):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    import application.app as module
    return importlib.reload(module)           # reads GRADIO_TEMP_DIR afresh


@pytest.fixture(scope="module")
def studio_url(app_module, tmp_path_factory):
    out = tiny_quickstart(tmp_path_factory)[0]
    port = _free_port()
    demo = app_module.launch(model=str(out / "model" / "pipeline"), dataset=str(out / "data"),
                             classifier=str(out / "eval" / "models" / "classifier"),
                             port=port, concurrency=2, block=False)
    yield f"http://127.0.0.1:{port}/", out
    demo.close()


@pytest.fixture(scope="module")
def client(studio_url):
    return gradio_client.Client(studio_url[0], verbose=False)


def _args(out: Path, **changes) -> list:
    values = dict(model=str(out / "model" / "pipeline"), dataset=str(out / "data"),
                  classifier=str(out / "eval" / "models" / "classifier"), flare_class=None,
                  log_flux=-5.0, guidance=1.0, sampler="dpm", steps=2, seed=0, count=3)
    if values["flare_class"] is None:
        from application.studio import inspect_model
        values["flare_class"] = inspect_model(values["model"]).known_classes[0]  # the commonest
    values.update(changes)
    return list(values.values())


def _images(gallery: list[dict]) -> list[np.ndarray]:
    from PIL import Image
    return [np.asarray(Image.open(item["image"])) for item in gallery]


def test_generate_endpoint_returns_requested_images(client, studio_url):
    out = studio_url[1]
    args = _args(out, count=3, seed=5)
    letter = args[3]
    synthetic, real, std_map, probs, files, status = client.predict(*args, api_name="/generate")
    images = _images(synthetic)
    assert len(images) == 3 and all(im.shape == (16, 16) for im in images)
    assert [item["caption"] for item in synthetic] == [f"{letter} · seed {s}" for s in (5, 6, 7)]
    assert all(item["caption"].startswith(f"real {letter}") for item in real)
    assert all(im.shape == (16, 16) for im in _images(real))
    assert Path(std_map).stat().st_size > 0
    assert len(probs["data"]) == 3
    p = np.array([row[2:] for row in probs["data"]], dtype=float)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=0.01)
    npz = next(f for f in files if f.endswith(".npz"))
    with np.load(npz) as z:
        assert z["images"].shape == (3, 1, 16, 16) and list(z["flare_class"]) == [letter] * 3
        assert list(z["seed"]) == [5, 6, 7]
        stored = z["images"]
    # what the gallery shows is the NPZ's images, not something else
    np.testing.assert_array_equal(images[0], np.round((stored[0, 0] + 1) * 127.5).clip(0, 255).astype(np.uint8))
    with zipfile.ZipFile(next(f for f in files if f.endswith("fits.zip"))) as z:
        assert len([n for n in z.namelist() if n.endswith(".fits")]) == 3
    with zipfile.ZipFile(next(f for f in files if f.endswith("png.zip"))) as z:
        assert len(z.namelist()) == 3
    assert "SYNTHETIC" in status


@pytest.mark.parametrize("change, message", [
    ({"count": 0}, "count must be between 1"),
    ({"steps": 0}, "steps must be between 1"),
    ({"flare_class": "Z"}, "'Z'"),
    ({"model": "/nonexistent/solargen-model"}, "no such model directory"),
    ({"sampler": "euler"}, "euler"),
    ({"count": 2.5}, "count must be a whole number, got 2.5"),
    ({"steps": 7.5}, "steps must be a whole number"),
    ({"count": "4"}, "count must be a whole number, got '4' (str)"),
    ({"guidance": "abc"}, "guidance scale must be a number, got 'abc'"),
    ({"guidance": 25.0}, "guidance scale must be between 0 and 20, got 25.0"),
    ({"seed": 2 ** 62 - 4}, f"got {2 ** 62 - 4}"),               # the value sent, exactly
    ({"seed": 2 ** 53 - 2}, f"seed must be between 0 and {2 ** 53 - 3}"),   # seed + 2 >= 2^53
    ({"seed": 2.0 ** 60}, "too large to be exact"),
])
def test_invalid_inputs_give_readable_errors(client, studio_url, change, message):
    with pytest.raises(Exception) as info:
        client.predict(*_args(studio_url[1], **change), api_name="/generate")
    assert message in str(info.value)


def test_a_seed_beyond_2_53_minus_one_runs_as_itself_and_outputs_are_named(client, studio_url):
    """The largest seed a browser holds exactly runs as that seed (the NPZ says so), one image
    reads "seed N", and every API output has a name."""
    seed = 2 ** 53 - 1
    *_, files, status = client.predict(*_args(studio_url[1], count=1, seed=seed), api_name="/generate")
    with np.load(next(f for f in files if f.endswith(".npz"))) as z:
        assert [int(s) for s in z["seed"]] == [seed]
    assert f"seed {seed}" in status and "seeds" not in status
    returns = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"]["returns"]
    assert [r["label"] for r in returns][-1] == "Status"
    assert not [r for r in returns if r["label"].startswith("value_")]


def test_a_class_from_too_few_training_frames_is_not_offered(studio_url):
    """The studio offers only classes learnt from MIN_CLASS_FRAMES frames; another is refused."""
    import dataclasses

    from application.studio import MIN_CLASS_FRAMES, SampleRequest, StudioError, inspect_model, validate
    info = inspect_model(studio_url[1] / "model" / "pipeline")
    commonest = info.known_classes[0]
    thin = dataclasses.replace(info, class_counts={**info.class_counts, commonest: MIN_CLASS_FRAMES - 1})
    assert commonest not in thin.offered_classes
    with pytest.raises(StudioError, match=f"saw {MIN_CLASS_FRAMES - 1} training frame"):
        validate(SampleRequest(model=str(info.path), flare_class=commonest, steps=2, count=1), thin)


def test_class_the_model_did_not_learn_is_refused(studio_url):
    from solargen.data.goes import GOES_CLASSES
    from application.studio import SampleRequest, StudioError, generate, inspect_model
    model = studio_url[1] / "model" / "pipeline"
    info = inspect_model(model)
    missing = [c for c in GOES_CLASSES if c not in info.known_classes] or ["Q"]
    with pytest.raises(StudioError, match="unknown to this model; it was trained on classes"):
        generate(SampleRequest(model=str(model), flare_class=missing[0], steps=2, count=1))


def _flux_info(kind: str, known=("B", "C", "M")):
    from application.studio import ModelInfo
    return ModelInfo(path=Path("m"), kind=kind, known_classes=tuple(known), synthetic=True,
                     channels=("171",), size=16, unet_size="XS", train_steps=1, num_train_timesteps=1000,
                     label_column="goes_class", dataset="d", fold="f1", train_window=None, frames_used=1,
                     class_counts={"B": 500, "C": 200, "M": 30},
                     flux_quantiles={"B": [-6.9, -6.5, -6.1], "C": [-5.9, -5.5, -5.1], "M": [-4.9, -4.6, -4.2]})


def test_flux_requests_are_checked_against_the_model(app_module):
    from application.studio import SampleRequest, StudioError, requested_letter, validate
    info = _flux_info("flux")
    ok = validate(SampleRequest(model="m", log_flux=-4.5, count=2, steps=3), info)
    assert requested_letter(ok) == "M" and ok.flare_class is None
    assert info.log_flux_range() == (-6.9, -4.2) and info.default_log_flux() == -4.6  # rarest class, M
    with pytest.raises(StudioError, match="NaN"):
        validate(SampleRequest(model="m", log_flux=float("nan")), info)
    with pytest.raises(StudioError, match="impossible"):
        validate(SampleRequest(model="m", log_flux=-1.0), info)
    with pytest.raises(StudioError, match="give log10 flux"):
        validate(SampleRequest(model="m", flare_class="M"), info)
    with pytest.raises(StudioError, match="learned only classes B, C, M"):
        validate(SampleRequest(model="m", log_flux=-3.5), _flux_info("both"))   # X1.0 > anything learned
    assert "GOES class **M3.2**" in app_module._flux_label(np.log10(3.2e-5))


def test_raw_json_nan_flux_is_refused(studio_url):
    """gradio_client will not send NaN; a hand-written JSON body can (Python's json writes NaN)."""
    import urllib.request
    url = studio_url[0].rstrip("/")
    body = json.dumps({"data": _args(studio_url[1], log_flux=float("nan"))}).encode()
    assert b"NaN" in body
    request = urllib.request.Request(f"{url}/gradio_api/call/generate", data=body,
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}/gradio_api/call/generate/{event_id}", timeout=120).read().decode()
    assert "event: error" in stream and "log10 flux must be a finite number" in stream, stream[-500:]


def test_probabilities_are_rounded_and_the_panel_says_what_the_model_takes(client, studio_url):
    out = studio_url[1]
    probs = client.predict(*_args(out, count=2), api_name="/generate")[3]
    values = [v for row in probs["data"] for v in row[2:]]
    assert values and all(round(float(v), 3) == float(v) and len(repr(float(v))) <= 6 for v in values)
    from application.studio import inspect_model
    info = inspect_model(out / "model" / "pipeline")
    assert info.kind == "class" and "no X-ray flux control" in info.describe()


SLACK_S = 0.25


def test_long_request_and_ten_short_ones_all_complete_in_queue_order(client, studio_url):
    """One long generation (64 images, 1000 steps) holds a worker while ten short ones queue
    behind it on the other: every request completes, the short ones in the order they queued.
    Completion is seen through the client's result callbacks, which run on each job's own thread:
    two results that arrive within a scheduling slice of each other (the long job loads both
    cores) may run their callbacks in either order, so order is judged on arrival times with
    that slack (SLACK_S), not on the order of the callbacks themselves."""
    from gradio_client.utils import Status
    out = studio_url[1]
    finished: list[str] = []
    arrived: dict[str, float] = {}

    def record(name: str) -> None:
        arrived[name] = time.monotonic()
        finished.append(name)

    def submit(name: str, **changes):
        job = client.submit(*_args(out, **changes), api_name="/generate",
                            result_callbacks=[lambda *r: record(name)])
        deadline = time.time() + 60          # joined the server's queue before the next one is sent
        while job.status().code in (Status.STARTING, Status.JOINING_QUEUE) and time.time() < deadline:
            time.sleep(0.05)
        return job

    long_job = submit("long", count=64, steps=1000, sampler="ddpm")
    short = [submit(f"short{i}", count=1, seed=i) for i in range(10)]
    results = [job.result(timeout=600) for job in short]
    assert len(long_job.result(timeout=900)[0]) == 64
    assert [r[0][0]["caption"].split("seed ")[1] for r in results] == [str(i) for i in range(10)]
    deadline = time.time() + 30
    while len(finished) < 11 and time.time() < deadline:     # callbacks run on the client's threads
        time.sleep(0.1)
    assert sorted(f for f in finished if f != "long") == sorted(f"short{i}" for i in range(10))
    times = [arrived[f"short{i}"] for i in range(10)]
    late = [i + 1 for i in range(9) if times[i + 1] < max(times[:i + 1]) - SLACK_S]
    assert not late, f"short jobs completed out of queue order: {late}"
    assert "long" in finished


def test_ten_concurrent_requests_all_complete(client, studio_url):
    out = studio_url[1]
    jobs = [client.submit(*_args(out, count=2, seed=10 * i), api_name="/generate") for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda job: job.result(timeout=120), jobs))
    assert len(results) == 10
    for i, result in enumerate(results):
        assert [item["caption"].split("seed ")[1] for item in result[0]] == [str(10 * i), str(10 * i + 1)]


# ----------------------------------------------------------------------------- a real browser

class DevTools:
    """The Chrome DevTools protocol over --remote-debugging-pipe (NUL-terminated JSON on fds 3/4)."""

    def __init__(self, args: list[str]):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        command = " ".join(["exec", *map(_quote, args), f"3<&{to_chrome_r}", f"4>&{from_chrome_w}"])
        self.proc = subprocess.Popen(["bash", "-c", command], pass_fds=(to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer, self._id = b"", 0

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium closed the DevTools pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise TimeoutError(method)

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(session, expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"page never satisfied: {expression}")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(arg)


GALLERY_IMAGES = "document.querySelectorAll('#synthetic-gallery img').length"
# Gradio's status tracker inside the gallery: present from the moment a job is queued
GALLERY_PENDING = "!!document.querySelector('#synthetic-gallery .progress-text, #synthetic-gallery .eta-bar')"
# the centre of the Generate button, or null while something else (a layout shift) lies on top of it
BUTTON_CENTRE = ("(() => { const b = document.querySelector('#generate-button'); if (!b || b.disabled) return null;"
                 " b.scrollIntoView({block: 'center'}); const r = b.getBoundingClientRect();"
                 " const x = r.x + r.width / 2, y = r.y + r.height / 2;"
                 " return b.contains(document.elementFromPoint(x, y)) ? [x, y] : null; })()")


def screenshot_app(url: str, png: Path, profile: Path, count: int = 4, timeout: float = 240) -> int:
    """Open the studio in headless Chromium, click Generate with a real mouse event, wait for
    `count` synthetic images in the gallery and save a full-page screenshot. Returns the number
    of gallery images. A click the page did not take up (it can land mid-render on a slow machine)
    is repeated, at most three times; a page that never fills shows its text in the error."""
    browser = DevTools([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                        f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"])
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1000,
                                                            "deviceScaleFactor": 1, "mobile": False}, session)
        browser.send("Page.navigate", {"url": url}, session)
        browser.wait_for(session, "document.readyState === 'complete'", timeout)
        for _ in range(3):
            x, y = browser.wait_for(session, BUTTON_CENTRE, timeout)
            for kind in ("mousePressed", "mouseReleased"):
                browser.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                          "clickCount": 1}, session)
            try:
                browser.wait_for(session, f"{GALLERY_PENDING} || {GALLERY_IMAGES} > 0", 15)
                break
            except TimeoutError:
                continue
        try:
            n = browser.wait_for(session, f"(() => {{ const n = {GALLERY_IMAGES}; return n >= {count} ? n : 0; }})()",
                                 timeout)
        except TimeoutError as exc:
            text = browser.evaluate(session, "document.body.innerText")
            raise TimeoutError(f"{exc}; the page reads:\n{str(text)[-1500:]}") from None
        browser.evaluate(session, "window.scrollTo(0, 0)")
        time.sleep(0.5)
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                            session)
        png.write_bytes(base64.b64decode(shot["data"]))
        return int(n)
    finally:
        browser.close()


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="headless browser test needs Debian's chromium "
                    "package at /usr/bin/chromium (apt-get install -y chromium)")
@pytest.mark.skipif(shutil.which("bash") is None, reason="the DevTools pipe is wired up by bash")
def test_browser_clicks_generate_and_sees_the_gallery(studio_url, tmp_path):
    png = tmp_path / "app.png"
    n = screenshot_app(studio_url[0], png, tmp_path / "profile")
    assert n >= 4                                     # the app's default count
    from PIL import Image
    with Image.open(png) as img:
        assert img.width >= 1000 and img.height >= 600
        assert np.asarray(img.convert("L")).std() > 5   # not a blank page


def test_multi_channel_frames_are_shown_side_by_side(app_module):
    frames = np.stack([np.full((2, 8, 8), v) for v in (-1.0, 0.0, 1.0)], axis=1)   # (2, 3, 8, 8)
    panels = app_module._panels(frames)
    assert len(panels) == 2 and panels[0].shape == (8, 3 * 8 + 2)
    assert panels[0][0, 0] == 0 and panels[0][0, 9] == 128 and panels[0][0, -1] == 255
    assert (panels[0][:, 8] == 255).all()                     # the separator column
    assert app_module._panels(frames[:, :1])[0].shape == (8, 8)
