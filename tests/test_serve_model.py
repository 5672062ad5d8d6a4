"""The server with a real trained model: parity with ``mnistcnn predict``, and a real browser.

``trained_checkpoint`` trains the tutorial recipe for one epoch on 20,000 real
MNIST images (about a minute on 2 CPU cores; hence ``slow``), so drawn digits
are recognised. The browser tests start ``python -m mnistcnn serve`` on
127.0.0.1 and drive Debian's headless Chromium through Selenium and
chromium-driver: they draw digits with pointer events (mouse, pen, touch) and
read the page's answer. They are skipped, saying why, only where Chromium or
its driver is not installed (``.ci/run`` installs them with apt-get).
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from mnistcnn.artifact import load_checkpoint
from mnistcnn.cli import main
from mnistcnn.predict import Predictor
from mnistcnn.serve import ServeSettings, create_app, describe_checkpoint

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def mnist_test_images(mnist_root: Path) -> tuple[np.ndarray, np.ndarray]:
    from mnistcnn.data.idx import read_idx

    raw = mnist_root / "MNIST" / "raw"
    images, labels = (
        read_idx(raw / "t10k-images-idx3-ubyte"),
        read_idx(raw / "t10k-labels-idx1-ubyte"),
    )
    return images[:200], labels[:200]


@pytest.fixture(scope="module")
def api(trained_checkpoint: Path) -> Iterator[TestClient]:
    predictor = Predictor.from_checkpoint(trained_checkpoint)
    app = create_app(predictor, ServeSettings(), describe_checkpoint(trained_checkpoint))
    with TestClient(app) as client:
        yield client


def scan_like(digit: np.ndarray) -> Image.Image:
    """An MNIST digit as a person's picture: dark ink on light paper, 4x larger, off-centre."""
    paper = Image.new("L", (150, 130), 235)
    ink = Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC)
    paper.paste(ink, (30, 10))
    return paper


def without_path(pred: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pred.items() if k != "path"}


def test_every_form_gives_the_cli_probabilities(
    api: TestClient, trained_checkpoint: Path, mnist_test_images: Any, tmp_path: Path
) -> None:
    images, _ = mnist_test_images
    picture = scan_like(images[0])
    path = tmp_path / "digit.png"
    picture.save(path)
    data = path.read_bytes()

    result = CliRunner().invoke(main, ["predict", "--json", str(trained_checkpoint), str(path)])
    assert result.exit_code == 0, result.output
    [cli] = json.loads(result.stdout)
    assert cli["label"] == "7" and cli["topk"]

    forms = {
        "multipart": {"files": {"file": ("digit.png", data, "image/png")}},
        "raw": {"content": data, "headers": {"Content-Type": "image/png"}},
        "base64": {"json": {"image_base64": base64.b64encode(data).decode()}},
    }
    for name, kwargs in forms.items():
        r = api.post("/v1/predict", **kwargs)
        assert r.status_code == 200, (name, r.text)
        assert without_path(r.json()["predictions"][0]) == without_path(cli), name
    assert api.post("/v1/predict", **forms["multipart"]).json()["predictions"][0]["path"] == (
        "digit.png"
    )

    small = tmp_path / "small.png"  # a 28x28 picture: as a file and as JSON pixels
    Image.fromarray(images[1]).save(small)
    result = CliRunner().invoke(main, ["predict", "--json", str(trained_checkpoint), str(small)])
    [cli_small] = json.loads(result.stdout)
    r = api.post("/v1/predict", json={"pixels": images[1].tolist()})
    assert without_path(r.json()["predictions"][0]) == without_path(cli_small)


def test_batch_accuracy_and_returned_inputs(api: TestClient, mnist_test_images: Any) -> None:
    images, labels = mnist_test_images
    correct = 0
    for start in range(0, len(images), 50):
        body = {"images": [{"pixels": img.tolist()} for img in images[start : start + 50]]}
        r = api.post("/v1/predict?return_input=true", json=body)
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert len(preds) == len(body["images"])
        for pred, label in zip(preds, labels[start : start + 50]):
            correct += pred["label"] == str(label)
            seen = np.array(pred["input"])
            assert seen.shape == (28, 28) and seen.min() >= 0 and seen.max() <= 255
    assert correct / len(images) > 0.93


def test_model_endpoint(api: TestClient, trained_checkpoint: Path) -> None:
    info = api.get("/v1/model").json()
    ckpt = load_checkpoint(trained_checkpoint)
    assert info["name"] == "tutorial" and info["dataset"] == "mnist"
    assert info["classes"] == ckpt.classes and len(info["classes"]) == 10
    assert info["test_accuracy"] == pytest.approx(ckpt.metrics["test_accuracy"])
    assert info["test_accuracy"] > 0.9
    assert info["parameters"] > 100_000
    assert info["versions"]["torch"] and info["checkpoint"] == "best.pt"
    assert str(trained_checkpoint.parent) not in json.dumps(info)  # no server paths leak


# --- the page in a real browser --------------------------------------------------------


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = -90) -> str:
    """An ellipse as a stroke string (percent of the canvas), from angle ``start``, clockwise."""
    angles = [math.radians(start + a) for a in range(0, 375, 15)]
    return " ".join(f"{cx + rx * math.cos(a):.1f},{cy + ry * math.sin(a):.1f}" for a in angles)


# How a person draws each digit: strokes separated by "|", each a list of "x,y" points in
# percent of the canvas (y down).
STROKES = {
    "0": _ellipse(50, 50, 20, 32),
    "1": "52,15 50,50 48,85",
    "2": "30,30 38,18 50,14 62,18 68,30 64,42 50,56 30,82 72,82",
    "3": "30,20 45,14 62,18 66,30 55,45 45,48 55,50 68,60 68,74 55,84 40,85 28,78",
    "4": "55,15 28,60 75,60 | 60,35 60,88",
    "5": "68,16 36,16 33,45 50,42 65,50 68,66 60,80 45,85 30,80",
    "6": "62,14 45,30 34,50 33,70 42,84 56,85 66,74 64,60 52,52 40,56 34,66",
    "7": "28,18 72,18 48,85",
    "8": _ellipse(50, 32, 15, 16, 90) + " | " + _ellipse(50, 66, 18, 18, -90),
    "9": _ellipse(50, 33, 16, 16, 0) + " | 66,33 64,60 62,86",
}
DIGITS = {
    digit: [
        [tuple(float(v) / 100 for v in p.split(",")) for p in stroke.split()]
        for stroke in strokes.split("|")
    ]
    for digit, strokes in STROKES.items()
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mnistcnn serve`` in a subprocess on a free loopback port; yields its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "mnistcnn", "serve", str(trained_checkpoint), "--port", str(port)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"server exited: {log.read_text()}"
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, f"server not up: {log.read_text()}"
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
    served = log.read_text()  # the access log saw the page's requests
    assert " /v1/predict 200 " in served or " /v1/read 200 " in served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Selenium (Debian's chromium + chromium-driver)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver (.ci/run does)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=900,800",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def draw(
    driver: Any, strokes: list[list[tuple[float, float]]], kind: str, target: str = "pad"
) -> None:
    """Draw ``strokes`` on #``target`` with W3C pointer actions of pointer type ``kind``."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, target)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", pad)
    w, h = pad.size["width"], pad.size["height"]
    actions = ActionBuilder(driver, mouse=PointerInput(kind, kind), duration=15)
    for stroke in strokes:
        pts = [(round((x - 0.5) * w), round((y - 0.5) * h)) for x, y in stroke]  # from centre
        actions.pointer_action.move_to(pad, *pts[0])
        actions.pointer_action.pointer_down()
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            for t in (0.5, 1.0):  # intermediate points, as a real hand gives
                actions.pointer_action.move_to(
                    pad, round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))
                )
        actions.pointer_action.pointer_up()
    actions.perform()


def answer(driver: Any, timeout: float = 20) -> dict[str, Any]:
    """Wait until the page shows a settled prediction; return its state and top-3."""
    script = """
      const r = document.getElementById('result');
      return {state: r.dataset.state, label: r.dataset.label, unsure: r.dataset.unsure,
              shown: document.getElementById('top-label').textContent,
              topk: [...document.querySelectorAll('#topk li')].map(
                li => [li.dataset.label, Number(li.dataset.probability)]),
              seen: Array.from(document.getElementById('seen').getContext('2d')
                               .getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 == 0)
                               .reduce((a, b) => a + b, 0)};"""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        got = driver.execute_script(script)
        if got["state"] in ("done", "error") and got == last:  # settled for one poll
            return got
        last = got
        time.sleep(0.3)
    raise AssertionError(f"page did not settle: {last}")


@pytest.mark.parametrize(
    ("digit", "kind", "viewport"),
    [("7", "mouse", (900, 800)), ("3", "pen", (900, 800)), ("0", "touch", (390, 844))],
    ids=["7-mouse-desktop", "3-pen-desktop", "0-touch-phone"],
)
def test_drawing_is_recognised(
    browser: Any, server: str, tmp_path: Path, digit: str, kind: str, viewport: tuple[int, int]
) -> None:
    browser.set_window_size(*viewport)
    browser.get(server + "/")
    assert browser.execute_script("return document.getElementById('result').dataset.state") == (
        "empty"
    )
    draw(browser, DIGITS[digit], kind)
    got = answer(browser)
    browser.save_screenshot(str(tmp_path / f"draw-{digit}-{kind}.png"))
    assert got["state"] == "done", got
    assert got["label"] == digit and got["shown"] == digit, got
    assert len(got["topk"]) == 3 and got["topk"][0][0] == digit
    assert got["topk"][0][1] >= got["topk"][1][1] >= got["topk"][2][1]
    assert got["seen"] > 0  # the 28x28 the model saw is drawn
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, "the page is wider than the viewport"
    browser.find_element("id", "clear").click()
    cleared = browser.execute_script("return document.getElementById('result').dataset.state")
    assert cleared == "empty"


def test_photo_upload(browser: Any, server: str, mnist_test_images: Any, tmp_path: Path) -> None:
    images, labels = mnist_test_images
    photo = tmp_path / "photo.jpg"
    scan_like(images[2]).convert("RGB").resize((600, 520)).save(photo, quality=90)
    browser.set_window_size(900, 800)
    browser.get(server + "/")
    browser.find_element("id", "photo").send_keys(str(photo))
    got = answer(browser)
    browser.save_screenshot(str(tmp_path / "photo.png"))
    assert got["state"] == "done" and got["label"] == str(labels[2]), got


def test_a_number_is_written_and_read(browser: Any, server: str, tmp_path: Path) -> None:
    """The wide canvas: three digits written with the mouse, each boxed and read."""
    browser.set_window_size(900, 800)
    browser.get(server + "/")
    written = "703"
    strokes = []
    for i, digit in enumerate(written):  # each digit in a square of 80 % of the height
        x0 = 0.15 + 0.22 * i
        for stroke in DIGITS[digit]:
            strokes.append([(x0 + 0.8 / 3 * x, 0.1 + 0.8 * y) for x, y in stroke])
    draw(browser, strokes, "mouse", target="numpad")
    script = """const t = document.getElementById('number');
      return {state: t.dataset.state, text: t.dataset.text || '',
              boxes: t.dataset.digits || '[]'};"""
    deadline = time.monotonic() + 30
    got = browser.execute_script(script)
    while time.monotonic() < deadline and not (got["state"] == "done" and got["text"]):
        time.sleep(0.3)
        got = browser.execute_script(script)
    browser.save_screenshot(str(tmp_path / "number.png"))
    assert got["state"] == "done" and got["text"] == written, got
    boxes = json.loads(got["boxes"])
    assert len(boxes) == 3 and [b[0] for b in boxes] == sorted(b[0] for b in boxes)
    inked = browser.execute_script(
        "const c = document.getElementById('numboxes');"
        "return c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
        ".filter((v, i) => i % 4 == 3 && v > 0).length;"
    )
    assert inked > 100  # the boxes and readings are drawn over the writing
    browser.find_element("id", "numclear").click()
    assert browser.execute_script("return document.getElementById('number').dataset.state") == (
        "empty"
    )
