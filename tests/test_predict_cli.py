"""``mnistcnn predict`` and ``mnistcnn calibrate`` from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import idx_bytes
from digits_synth import digit
from mnistcnn.cli import main
from test_predict_inputs import encoded, png_header
from test_predict_predictor import make_checkpoint


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "model.pt")


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two good pictures, a blank one, and four bad files, in name order."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "a_three.png").write_bytes(encoded(digit("3")))
    (d / "b_seven.jpg").write_bytes(encoded(digit("7", ink=250, paper=10), "JPEG"))
    (d / "c_blank.png").write_bytes(encoded(Image.new("L", (50, 50), 255)))
    (d / "d_empty.png").write_bytes(b"")
    (d / "e_text.png").write_bytes(b"just some words\n")
    (d / "f_bomb.png").write_bytes(png_header(100_000, 100_000))
    (d / "g_cut.png").write_bytes(encoded(digit("1"))[:200])
    return d


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, ["predict", *args], input=input)


def test_table_reports_every_file_and_exit_code_3_when_some_failed(ckpt, folder):
    r = run(str(ckpt), str(folder), "--threshold", "0")
    assert r.exit_code == 3, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["file", "label", "top-3", "status"]
    rows = {Path(line.split()[0]).name: line for line in lines[1:]}
    assert sorted(rows) == sorted(p.name for p in folder.iterdir())
    assert rows["a_three.png"].endswith("confident") and "%" in rows["a_three.png"]
    assert rows["c_blank.png"].endswith("unsure (no ink)")
    assert "error: an empty file (0 bytes)" in rows["d_empty.png"]
    assert "error: a text file" in rows["e_text.png"]
    assert "decompression bomb" in rows["f_bomb.png"]
    assert "truncated or corrupt" in rows["g_cut.png"]
    assert "7 pictures: 2 confident, 1 unsure, 4 failed" in r.stderr
    assert "not calibrated" in r.stderr


def test_all_good_exits_0(ckpt, folder):
    r = run(str(ckpt), str(folder / "a_three.png"), str(folder / "b_seven.jpg"))
    assert r.exit_code == 0, r.output


def test_json_format(ckpt, folder):
    r = run(str(ckpt), str(folder), "--json", "--top-k", "2", "--threshold", "0")
    assert r.exit_code == 3
    data = json.loads(r.stdout)
    assert isinstance(data, list) and len(data) == 7
    keys = ["path", "label", "probability", "topk", "unsure", "error"]
    assert all(list(d) == keys for d in data)
    good, blank, empty = data[0], data[2], data[3]
    assert good["path"] == str(folder / "a_three.png") and good["error"] is None
    assert [list(t) for t in good["topk"]] == [["label", "probability"]] * 2
    assert good["label"] == good["topk"][0]["label"] and not good["unsure"]
    assert good["probability"] == good["topk"][0]["probability"]
    assert blank == {**blank, "label": None, "probability": None, "topk": [], "unsure": True}
    assert empty["error"] == "an empty file (0 bytes)" and empty["label"] is None


def test_csv_format(ckpt, folder):
    r = run(str(ckpt), str(folder / "a_three.png"), str(folder / "d_empty.png"), "--csv")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == [
        "path", "label", "probability", "unsure", "error",
        "top1_label", "top1_prob", "top2_label", "top2_prob", "top3_label", "top3_prob",
    ]  # fmt: skip
    assert len(rows) == 3 and all(len(row) == 11 for row in rows)
    assert rows[2][4] == "an empty file (0 bytes)" and rows[2][5:] == [""] * 6
    assert float(rows[1][6]) >= float(rows[1][8]) >= float(rows[1][10])


def test_stdin_and_idx(ckpt, tmp_path):
    png = encoded(digit("2"))
    from_stdin = run(str(ckpt), "-", "--json", input=png)
    assert from_stdin.exit_code == 0, from_stdin.output
    (one,) = json.loads(from_stdin.stdout)
    from_file = tmp_path / "two.png"
    from_file.write_bytes(png)
    (same,) = json.loads(run(str(ckpt), str(from_file), "--json").stdout)
    assert one["path"] == "-" and one["topk"] == same["topk"]
    images = np.stack([np.asarray(Image.new("L", (28, 28))), np.eye(28, dtype=np.uint8) * 255])
    idx = tmp_path / "imgs-idx3-ubyte"
    idx.write_bytes(idx_bytes(images))
    out = json.loads(run(str(ckpt), str(idx), "--json").stdout)
    assert [d["path"] for d in out] == [f"{idx}#0", f"{idx}#1"]
    assert out[0]["unsure"] and out[0]["topk"] == [] and len(out[1]["topk"]) == 3


def test_show_input_writes_what_the_model_saw(ckpt, folder, tmp_path):
    from mnistcnn.predict import Predictor

    shown = tmp_path / "shown"
    r = run(str(ckpt), str(folder), "--show-input", str(shown))
    assert r.exit_code == 3
    names = sorted(p.name for p in shown.iterdir())
    assert names == [
        "0000-a_three.input.png",
        "0000-a_three.png",
        "0001-b_seven.input.png",
        "0001-b_seven.png",
        "0002-c_blank.input.png",
        "0002-c_blank.png",
    ]  # nothing for the four bad files
    saw = np.asarray(Image.open(shown / "0000-a_three.input.png"))
    (pred,) = Predictor.from_checkpoint(ckpt).predict([folder / "a_three.png"])
    assert saw.shape == (28, 28) and np.array_equal(saw, pred.input)
    assert Image.open(shown / "0000-a_three.png").size[0] > 600  # the side-by-side figure


def test_user_errors_are_one_line(ckpt, tmp_path):
    r = run(str(ckpt), "x.png", "--json", "--csv")
    assert r.exit_code == 2 and "cannot be combined" in r.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = run(str(bad), "x.png")
    assert r.exit_code == 1 and r.output.startswith("error: ") and "Traceback" not in r.output
    r = run(str(ckpt), str(tmp_path / "nothing-here"))
    assert r.exit_code == 3 and "no such file or folder" in r.stdout


def test_help_documents_exit_codes_and_defaults():
    r = CliRunner().invoke(main, ["predict", "--help"])
    assert r.exit_code == 0
    assert "3 when some" in r.output and "[default: 0.5]" in r.output
    assert "[default: auto]" in r.output and "[default: 3; x>=1]" in r.output


def test_calibrate_refuses_a_model_without_held_out_images(ckpt):
    r = CliRunner().invoke(main, ["calibrate", str(ckpt)])
    assert r.exit_code == 1
    assert "no held-out validation images" in r.output and "--val-fraction" in r.output


def test_top_k_over_the_classes_lists_them_all_once(ckpt, folder):
    three = str(folder / "a_three.png")
    r = run(str(ckpt), three, "--top-k", "20", "--threshold", "0")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("note: --top-k 20 is more than the model's 10 classes") == 1
    header, row = r.stdout.splitlines()
    assert header.split() == ["file", "label", "top-10", "status"]
    assert row.count("%") == 10 and "  " * 10 not in row  # no padding for absent classes
    assert header.index("status") == row.index("confident")
    assert "1 picture: 1 confident, 0 unsure, 0 failed" in r.stderr
    (one,) = json.loads(run(str(ckpt), three, "--top-k", "20", "--json").stdout)
    assert len(one["topk"]) == 10
    rows = list(csv.reader(io.StringIO(run(str(ckpt), three, "--top-k", "11", "--csv").stdout)))
    assert rows[0][-2:] == ["top10_label", "top10_prob"] and len(rows[1]) == len(rows[0])


def test_non_ascii_names_keep_the_columns_and_a_safe_show_input_name(ckpt, folder, tmp_path):
    import warnings

    from mnistcnn._text import display_width

    odd = folder / "ünïcödé 七.png"
    odd.write_bytes((folder / "a_three.png").read_bytes())
    newline = folder / "new\nline.png"
    newline.write_bytes((folder / "a_three.png").read_bytes())
    r = run(str(ckpt), str(newline), "--threshold", "0")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2, r.stdout  # one row, escaped
    assert "new\\nline.png" in r.stdout
    newline.unlink()
    shown = tmp_path / "shown"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = run(str(ckpt), str(folder / "a_three.png"), str(odd), "--threshold", "0",
                "--show-input", str(shown))  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    starts = {display_width(line[: line.rindex("confident" if i else "status")])
              for i, line in enumerate(lines)}  # fmt: skip
    assert len(starts) == 1, r.stdout  # the status column lines up under wide characters
    assert "Glyph" not in r.output and not [w for w in caught if "Glyph" in str(w.message)]
    assert sorted(p.name for p in shown.iterdir()) == [
        "0000-a_three.input.png", "0000-a_three.png",
        "0001-unicode_七.input.png", "0001-unicode_七.png",
    ]  # fmt: skip
    assert "2 pictures: 2 confident" in r.stderr


def test_figure_titles_escape_what_the_font_cannot_draw():
    from mnistcnn.evaluation.plots import renderable

    assert renderable("ünïcödé 七.png  ->  confident: 3") == "ünïcödé \\u4e03.png  ->  confident: 3"
