"""Reading numbers with a model trained on real MNIST: the reader, ``mnistcnn read``, ``/v1/read``.

The pictures are MNIST *test* digits written on generated paper
(:mod:`mnistcnn.data.numbers`); the model is ``trained_checkpoint`` (tutorial
recipe, one epoch on 20,000 training images).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from mnistcnn.cli import main
from mnistcnn.cli.predict import EXIT_SOME_FAILED
from mnistcnn.data.numbers import digit_ink, number_page
from mnistcnn.data.page_clutter import ink_on_paper
from mnistcnn.predict import Predictor
from mnistcnn.predict.reader import Reader, read
from mnistcnn.serve import ServeSettings, create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist_test(mnist_root: Path) -> tuple[np.ndarray, np.ndarray]:
    from mnistcnn.data.idx import read_idx

    raw = mnist_root / "MNIST" / "raw"
    return read_idx(raw / "t10k-images-idx3-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte")


@pytest.fixture(scope="module")
def reader(trained_checkpoint: Path) -> Reader:
    return Reader.from_checkpoint(trained_checkpoint)


def first(mnist_test: Any, digit: int, skip: int = 0) -> np.ndarray:
    """The (skip+1)-th MNIST test image of ``digit``."""
    images, labels = mnist_test
    return images[np.flatnonzero(labels == digit)[skip]]


def page_6342(mnist_test: Any) -> Image.Image:
    """The 480x200 page (grey 235) with MNIST test digits 6 3 4 2, 90 px tall, 20 px apart."""
    return number_page([first(mnist_test, d) for d in (6, 3, 4, 2)], 90, 20, (480, 200))


def written(mnist_test: Any, lines: list[list[tuple[int, int]]], height: int = 60) -> Image.Image:
    """Lines of digits on paper: each ``(digit, gap)`` is a digit and its ink gap (px) to the
    one before it (<= 0: touching or overlapping, row by row)."""
    from mnistcnn.data.numbers import _next_x, _Placed

    inks, y = [], 30
    for line in lines:
        placed: list[_Placed] = []
        for digit, gap in line:
            item = _Placed(digit_ink(first(mnist_test, digit, len(inks) % 3), height), 40, y)
            if placed:
                item.x = _next_x(placed[-1:], item.ink, y, gap)
            placed.append(item)
        inks += placed
        y += round(1.5 * height)
    w = max(p.x + p.ink.shape[1] for p in inks) + 40
    canvas = np.zeros((y + 10, w), np.float32)
    for p in inks:
        h, pw = p.ink.shape
        canvas[p.y : p.y + h, p.x : p.x + pw] = np.maximum(
            canvas[p.y : p.y + h, p.x : p.x + pw], p.ink
        )
    return ink_on_paper(canvas, np.random.default_rng(0), paper=230)


def test_the_6342_page_is_read(reader: Reader, mnist_test: Any) -> None:
    r = reader.read_picture(page_6342(mnist_test))
    assert r.text == "6342" and r.error is None
    assert [d.label for d in r.digits] == ["6", "3", "4", "2"]
    lefts = [d.box[0] for d in r.digits]
    assert lefts == sorted(lefts) and all(d.box[3] - d.box[1] in range(85, 96) for d in r.digits)
    assert all(0.5 <= d.probability <= 1 and not d.unsure for d in r.digits)
    assert all(d.input is not None and d.input.shape == (28, 28) for d in r.digits)


def test_a_touching_pair_is_cut(reader: Reader, mnist_test: Any) -> None:
    r = reader.read_picture(written(mnist_test, [[(4, 0), (7, -2)]]))
    assert len(r.digits) == 2, r
    assert r.digits[0].box[2] > r.digits[1].box[0] - 3  # they touch: the boxes meet
    assert r.text == "47"


def test_two_lines_read_top_to_bottom(reader: Reader, mnist_test: Any) -> None:
    r = reader.read_picture(written(mnist_test, [[(1, 0), (2, 15)], [(3, 0), (5, 18), (0, 12)]]))
    assert r.text == "12\n350"
    assert [d.line for d in r.digits] == [0, 0, 1, 1, 1]


def test_python_api(trained_checkpoint: Path, mnist_test: Any) -> None:
    readings = read(trained_checkpoint, [page_6342(mnist_test), first(mnist_test, 7)])
    assert [r.text for r in readings] == ["6342", "7"]  # the IDX-format array: one digit
    assert json.loads(json.dumps(readings[0].to_dict()))["digits"][1]["label"] == "3"


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("RGB", "JPEG"), ("RGBA", "PNG"), ("P", "GIF"), ("1", "BMP"),
     ("I;16", "TIFF"), ("LA", "WEBP"), ("CMYK", "JPEG")],
)  # fmt: skip
def test_cli_reads_every_mode(trained_checkpoint: Path, mnist_test: Any, tmp_path: Path,
                              mode: str, fmt: str) -> None:  # fmt: skip
    page = page_6342(mnist_test)
    if mode == "1":
        page = page.point(lambda v: 255 if v > 150 else 0)
    path = tmp_path / f"page.{fmt.lower()}"
    if mode == "I;16":  # the full 16-bit range, as a scanner writes it
        page = Image.fromarray((np.asarray(page, np.uint16) * 257).astype("<u2"))
    page.convert(mode).save(path, fmt)
    res = CliRunner().invoke(main, ["read", str(trained_checkpoint), str(path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["text"] == "6342"


def test_cli_table_csv_and_show_input(trained_checkpoint: Path, mnist_test: Any,
                                      tmp_path: Path) -> None:  # fmt: skip
    path = tmp_path / "n.png"
    page_6342(mnist_test).save(path)
    runner = CliRunner()
    res = runner.invoke(main, ["read", str(trained_checkpoint), str(path), "missing.png"])
    assert res.exit_code == EXIT_SOME_FAILED
    assert "6342" in res.output and "4 digits" in res.output and "missing.png" in res.output
    res = runner.invoke(main, ["read", str(trained_checkpoint), str(path), "--csv"])
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert [r["label"] for r in rows] == ["6", "3", "4", "2"] and rows[0]["text"] == "6342"
    shown = tmp_path / "shown"
    res = runner.invoke(
        main, ["read", str(trained_checkpoint), str(path), "--show-input", str(shown)]
    )
    assert res.exit_code == 0
    boxes = Image.open(shown / "0000-n.boxes.png")
    assert boxes.size == (480, 200) and boxes.mode == "RGB"
    assert Image.open(shown / "0000-n.digits.png").size == (4 * 84 + 12, 84)
    res = runner.invoke(main, ["read", "--help"])
    assert "Example:" in res.output and "--show-input" in res.output


def test_predict_does_not_answer_one_confident_digit(trained_checkpoint: Path,
                                                      mnist_test: Any) -> None:  # fmt: skip
    predictor = Predictor.from_checkpoint(trained_checkpoint)
    pred = predictor.predict([page_6342(mnist_test)])[0]
    assert pred.unsure and pred.label is None
    assert pred.digits_found == 4 and pred.to_dict()["digits_found"] == 4
    one = predictor.predict([written(mnist_test, [[(7, 0)]])])[0]
    assert one.label == "7" and one.digits_found is None and "digits_found" not in one.to_dict()


@pytest.fixture(scope="module")
def api(trained_checkpoint: Path) -> Any:
    app = create_app(Predictor.from_checkpoint(trained_checkpoint), ServeSettings(max_images=4))
    with TestClient(app) as client:
        yield client


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_serve_read(api: TestClient, mnist_test: Any) -> None:
    body = png(page_6342(mnist_test))
    res = api.post("/v1/read?return_input=true", content=body,
                   headers={"Content-Type": "image/png"})  # fmt: skip
    assert res.status_code == 200, res.text
    reading = res.json()["readings"][0]
    assert reading["text"] == "6342" and len(reading["digits"]) == 4
    assert np.array(reading["digits"][0]["input"]).shape == (28, 28)
    files = [("files", (f"{i}.png", body, "image/png")) for i in range(2)]
    res = api.post("/v1/read", files=files)
    assert [r["text"] for r in res.json()["readings"]] == ["6342", "6342"]
    assert res.json()["readings"][1]["path"] == "1.png"
    too_many = [("files", (f"{i}.png", body, "image/png")) for i in range(5)]
    assert api.post("/v1/read", files=too_many).status_code == 413
    bad = api.post("/v1/read", content=b"not a picture", headers={"Content-Type": "image/png"})
    assert bad.status_code in (415, 422)
    schema = api.get("/openapi.json").json()
    assert "/v1/read" in schema["paths"]
    ok = schema["paths"]["/v1/read"]["post"]["responses"]["200"]
    assert "readings" in json.dumps(ok)
