"""The worked convolution (``mnistcnn explain conv``), checked against F.conv2d."""

from __future__ import annotations

import json
import random

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from mnistcnn.cli import main
from mnistcnn.explain import conv_inputs as ci
from mnistcnn.explain.conv_arithmetic import AxisArithmetic, worked_convolution
from mnistcnn.explain.conv_inputs import TUTORIAL_INPUT, TUTORIAL_KERNEL, ConvInputError
from mnistcnn.explain.conv_pictures import convolution_figure, load_image_matrix

TUTORIAL_MAP = [
    [51, 61, 71, 81],
    [101, 111, 121, 131],
    [151, 161, 171, 181],
    [201, 211, 221, 231],
]


def _torch_conv(matrix, kernel, stride, padding):
    x = torch.tensor(matrix, dtype=torch.float64)[None, None]  # (1, 1, H, W)
    w = torch.tensor(kernel, dtype=torch.float64)[None, None]  # (1, 1, kh, kw)
    return F.conv2d(x, w, stride=stride, padding=padding)[0, 0]


def test_tutorial_map_exact_and_matches_torch():
    worked = worked_convolution(TUTORIAL_INPUT, TUTORIAL_KERNEL)
    assert TUTORIAL_INPUT[0] == [1, 2, 3, 4, 5] and TUTORIAL_INPUT[4] == [21, 22, 23, 24, 25]
    assert worked.output == TUTORIAL_MAP
    assert _torch_conv(TUTORIAL_INPUT, TUTORIAL_KERNEL, 1, 0).tolist() == TUTORIAL_MAP
    assert (worked.rows.size, worked.cols.size) == (4, 4)


def test_tutorial_terms_written_out():
    worked = worked_convolution(TUTORIAL_INPUT, TUTORIAL_KERNEL)
    assert worked.element(1, 1).equation() == "a11 = (1*1) + (2*2) + (6*3) + (7*4) = 51"
    assert worked.element(1, 2).equation() == "a12 = (2*1) + (3*2) + (7*3) + (8*4) = 61"
    assert worked.element(4, 4).terms == ((19, 1), (20, 2), (24, 3), (25, 4))
    assert worked.rows.formula() == "(5 - 2 + 2*0)/1 + 1 = 4"
    assert worked.rows.remainder_note("rows") is None


@pytest.mark.parametrize("seed", range(40))
def test_random_integer_inputs_match_conv2d_exactly(seed):
    rng = random.Random(seed)
    h, w = rng.randint(1, 8), rng.randint(1, 8)
    padding, stride = rng.randint(0, 2), rng.randint(1, 3)
    kh, kw = rng.randint(1, h + 2 * padding), rng.randint(1, w + 2 * padding)
    matrix = [[rng.randint(-9, 9) for _ in range(w)] for _ in range(h)]
    kernel = [[rng.randint(-4, 4) for _ in range(kw)] for _ in range(kh)]
    worked = worked_convolution(matrix, kernel, stride=stride, padding=padding)
    expected = _torch_conv(matrix, kernel, stride, padding)
    assert worked.output == expected.to(torch.int64).tolist()
    assert (worked.rows.size, worked.cols.size) == tuple(expected.shape)
    flat_kernel = [v for row in kernel for v in row]
    for element in worked.elements():
        assert [wv for _, wv in element.terms] == flat_kernel  # not flipped
        assert element.total == sum(x * wv for x, wv in element.terms)
        assert element.total == worked.output[element.row - 1][element.col - 1]


@pytest.mark.parametrize("seed", range(10))
def test_random_float_inputs_match_conv2d(seed):
    rng = random.Random(100 + seed)
    matrix = [[rng.uniform(-1, 1) for _ in range(6)] for _ in range(5)]
    kernel = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(2)]
    worked = worked_convolution(matrix, kernel, stride=2, padding=1)
    expected = _torch_conv(matrix, kernel, 2, 1)
    assert torch.allclose(torch.tensor(worked.output, dtype=torch.float64), expected, atol=1e-12)


def test_stride_padding_non_square_remainder_dropped():
    matrix = [[r * 7 + c for c in range(7)] for r in range(6)]  # 6 x 7
    worked = worked_convolution(matrix, [[1, 0], [0, 1], [1, 1]], stride=2, padding=1)
    assert (worked.rows.size, worked.cols.size) == (3, 4)
    assert worked.rows.formula() == "floor((6 - 3 + 2*1)/2) + 1 = floor(5/2) + 1 = 2 + 1 = 3"
    assert worked.cols.formula() == "floor((7 - 2 + 2*1)/2) + 1 = floor(7/2) + 1 = 3 + 1 = 4"
    assert worked.rows.remainder_note("rows") == (
        "5 is not divisible by the stride 2: the remainder 1 is dropped; "
        "the last 1 row of the padded input never falls under the kernel"
    )
    assert len(worked.padded) == 8 and len(worked.padded[0]) == 9
    assert worked.padded[0] == [0] * 9 and worked.padded[1] == [0, 0, 1, 2, 3, 4, 5, 6, 0]
    assert worked.output == _torch_conv(matrix, [[1, 0], [0, 1], [1, 1]], 2, 1).long().tolist()


@pytest.mark.parametrize(
    ("n", "k", "p", "s", "d", "ceil"),
    [
        (28, 5, 2, 1, 1, False),
        (28, 3, 0, 2, 1, True),
        (7, 3, 1, 2, 1, True),
        (10, 3, 1, 3, 2, False),
        (13, 2, 1, 2, 1, True),
        (5, 5, 0, 1, 1, False),
    ],
)
def test_axis_arithmetic_matches_torch_pooling(n, k, p, s, d, ceil):
    pool = torch.nn.MaxPool2d(k, s, padding=min(p, k // 2), dilation=d, ceil_mode=ceil)
    out = pool(torch.zeros(1, 1, n, n)).shape[-1]
    assert AxisArithmetic(n, k, min(p, k // 2), s, d, ceil).size == out


def test_parse_matrix_forms_and_errors():
    assert ci.parse_matrix("1 2 3; 4 5 6; 7 8 9") == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert ci.parse_matrix("1,0\n0,-1;") == [[1, 0], [0, -1]]
    assert ci.parse_matrix("0.5 -2") == [[0.5, -2]]
    cases = {
        "1 2; 3": "row 2 has 1 values",
        "1 x": "'x' is not a number",
        "1 nan": "not finite",
        "": "is empty",
        "1 2;;3 4": "row 2 is empty",
    }
    for text, message in cases.items():
        with pytest.raises(ConvInputError, match=message) as info:
            ci.parse_matrix(text, "input")
        assert info.value.argument == "input"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"stride": 0}, "stride"),
        ({"padding": -1}, "padding"),
        ({"kernel": [[1] * 6]}, "kernel"),
        ({"input": [[1, 2], [3]]}, "input"),
    ],
)
def test_worked_convolution_rejects_bad_arguments(kwargs, argument):
    args = {"input": TUTORIAL_INPUT, "kernel": TUTORIAL_KERNEL, **kwargs}
    with pytest.raises(ConvInputError) as info:
        worked_convolution(**args)
    assert info.value.argument == argument


def test_kernel_may_fill_padded_input():
    worked = worked_convolution([[1, 2], [3, 4]], [[1] * 4] * 4, padding=1)
    assert worked.output == [[10]]


def test_named_filters():
    assert ci.named_filter("sobel-x") == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert ci.named_filter("edge")[1][1] == 8
    with pytest.raises(ConvInputError, match="valid: identity, edge"):
        ci.named_filter("nope")


def test_load_image_matrix_grayscale_resize_unit(tmp_path):
    path = tmp_path / "rgb.png"
    img = Image.new("RGB", (12, 8), (255, 0, 0))
    img.putpixel((1, 0), (0, 255, 0))
    img.save(path)
    matrix = load_image_matrix(path, preprocess=False)
    # ITU-R 601-2 luma: 255*299/1000 = 76.2, 255*587/1000 = 149.7 (Pillow rounds)
    assert matrix[0][:4] == [76, 150, 76, 76] and matrix[1] == [76] * 12
    assert len(matrix) == 8 and len(matrix[0]) == 12
    assert len(load_image_matrix(path, size=3, preprocess=False)) == 3
    assert load_image_matrix(path, unit_range=True, preprocess=False)[0][0] == pytest.approx(
        76 / 255
    )
    with pytest.raises(ConvInputError) as info:
        load_image_matrix(tmp_path / "missing.png")
    assert info.value.argument == "image"


def _ink_on_transparent(path):
    """Black ink (a thick "1") on a fully transparent canvas, as drawing apps save it."""
    img = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    for x in range(27, 33):
        for y in range(10, 50):
            img.putpixel((x, y), (0, 0, 0, 255))
    img.save(path)
    return path


def test_image_is_read_as_predict_reads_it_transparency_and_polarity(tmp_path):
    """Black ink on a transparent PNG is all zeros to convert("L"); predict sees a digit."""
    from mnistcnn.prepare import Preparation

    path = _ink_on_transparent(tmp_path / "ink.png")
    matrix = load_image_matrix(path)
    with Image.open(path) as img:
        want = Preparation().apply(img).image  # what `mnistcnn predict` gives the model
    assert matrix == want.astype(int).tolist()
    assert len(matrix) == 28 and max(map(max, matrix)) == 255  # light ink on black
    assert matrix[0] == [0] * 28
    raw = load_image_matrix(path, preprocess=False)  # composited onto white: dark ink
    assert raw[30][30] == 0 and raw[0][0] == 255 and len(raw) == 60
    result = _run("--image", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["input"] == matrix


def test_image_errors_as_predict_reports_them(tmp_path):
    Image.new("RGBA", (1, 1)).save(tmp_path / "one.png")
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    Image.new("L", (100, 80), 255).save(tmp_path / "big.png")
    cases = [
        (["--image", str(tmp_path / "one.png")], "1x1 px: too small for a digit"),
        (["--image", str(tmp_path / "blank.png")], "no ink found (a blank picture)"),
        (["--image", str(tmp_path / "big.png"), "--no-preprocess"], "100x80 px"),
    ]
    for args, words in cases:
        result = _run(*args)
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--image'" in result.output and words in result.output
    ok = _run("--image", str(tmp_path / "big.png"), "--no-preprocess", "--size", "20")
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--image", "x.png", "--size", "100000"], "'--size': 100000 is not in the range 1<=x<=64"),
        (["--padding", "100000"], "'--padding': 100000 is not in the range 0<=x<=7"),
        (["--input", " ".join(["1"] * 65)], "'--input': input is 1x65; the worked convolution "
         "takes at most 64x64 (rows and columns 1..64)"),
        (["--input", "1;" * 100], "input is 100x1"),
        (["--kernel", ";".join(["1 1"] * 16)], "'--kernel': kernel is 16x2; the worked "
         "convolution takes at most 15x15"),
    ],
)  # fmt: skip
def test_cli_size_limits_name_the_flag_value_and_range(args, words):
    result = _run(*args)
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_largest_allowed_sizes_work():
    big = [[(r + c) % 7 for c in range(ci.MAX_INPUT_SIDE)] for r in range(ci.MAX_INPUT_SIDE)]
    kernel = [[1] * ci.MAX_KERNEL_SIDE] * ci.MAX_KERNEL_SIDE
    worked = worked_convolution(big, kernel, padding=ci.MAX_PADDING)
    assert (worked.rows.size, worked.cols.size) == (64, 64)
    with pytest.raises(ConvInputError, match=r"padding must be in 0\.\.7"):
        worked_convolution(big, kernel, padding=ci.MAX_PADDING + 1)


def test_to_dict_is_json_with_every_term():
    data = json.loads(json.dumps(worked_convolution(TUTORIAL_INPUT, TUTORIAL_KERNEL).to_dict()))
    assert data["output"] == TUTORIAL_MAP
    assert len(data["terms"]) == 16
    assert data["terms"][0]["products"] == [[1, 1], [2, 2], [6, 3], [7, 4]]
    assert data["terms"][0]["sum"] == 51 and data["terms"][1]["name"] == "a12"
    assert data["output_size"]["rows"]["formula"] == "(5 - 2 + 2*0)/1 + 1 = 4"
    assert "cross-correlation" in data["note"]


def test_figure_panels_and_annotations(tmp_path):
    fig = convolution_figure(worked_convolution(TUTORIAL_INPUT, TUTORIAL_KERNEL))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Input A (5x5)", "Kernel F (2x2)", "Feature map (4x4), stride 1, padding 0"]
    assert [len(ax.texts) for ax in fig.axes] == [25, 4, 16]
    assert fig.axes[2].texts[0].get_text() == "51"
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_figure_large_input_not_annotated():
    matrix = [[(r * c) % 256 for c in range(28)] for r in range(28)]
    fig = convolution_figure(
        worked_convolution(matrix, ci.named_filter("edge")), kernel_name="edge"
    )
    assert [len(ax.texts) for ax in fig.axes[:3]] == [0, 9, 0]
    assert fig.axes[1].get_title() == "Kernel F (3x3): edge"


def _run(*args):
    return CliRunner().invoke(main, ["explain", "conv", *args])


def test_cli_tutorial_default():
    result = _run()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "  a11 = (1*1) + (2*2) + (6*3) + (7*4) = 51" in lines
    assert "  a12 = (2*1) + (3*2) + (7*3) + (8*4) = 61" in lines
    assert "  a44 = (19*1) + (20*2) + (24*3) + (25*4) = 231" in lines
    assert "  rows:    (5 - 2 + 2*0)/1 + 1 = 4" in lines
    assert "  columns: (5 - 2 + 2*0)/1 + 1 = 4" in lines
    assert "  201 211 221 231" in lines
    assert "cross-correlation" in result.output and "not flipped" in result.output


def test_cli_custom_padding_and_json():
    result = _run(
        "--input", "1 2 3; 4 5 6; 7 8 9", "--kernel", "1 0; 0 -1", "--padding", "1", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = _torch_conv([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 0], [0, -1]], 1, 1)
    assert data["output"] == expected.long().tolist()
    assert data["padded_input"][1] == [0, 1, 2, 3, 0]
    assert len(data["terms"]) == 16


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--input", "1 2; 3"], "'--input'"),
        (["--input", "1 a"], "'--input'"),
        (["--kernel", "1 2 3 4 5 6"], "'--kernel'"),
        (["--stride", "0"], "'--stride'"),
        (["--padding", "-1"], "'--padding'"),
        (["--image", "missing.png"], "'--image'"),
    ],
)
def test_cli_bad_input_names_option(args, option):
    result = _run(*args)
    assert result.exit_code == 2
    assert f"Invalid value for {option}" in result.output
    assert "Traceback" not in result.output


def test_cli_image_edge_summary_and_save(tmp_path):
    img = Image.new("L", (40, 40), 0)
    for i in range(10, 30):
        img.putpixel((i, 20), 255)
    img.save(tmp_path / "line.png")
    out = tmp_path / "edge.png"
    result = _run(
        "--image",
        str(tmp_path / "line.png"),
        "--size",
        "28",
        "--filter",
        "edge",
        "--save",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "Input A (28x28): too large to print" in result.output
    assert "3 of 676:" in result.output and "... 673 more" in result.output
    assert sum(line.startswith("  a") for line in result.output.splitlines()) == 3
    assert "largest: a" in result.output and "smallest: a" in result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_cli_exclusive_options():
    assert _run("--input", "1", "--image", "x.png").exit_code == 2
    assert _run("--kernel", "1", "--filter", "edge").exit_code == 2


@pytest.mark.parametrize(
    ("matrix", "annotated"),
    [
        ([[255] * 12 for _ in range(12)], True),  # feature map of 4-digit values: 2550
        ([[7 / 17] * 12 for _ in range(12)], None),  # --unit-range: 0.411765, written if it fits
        ([[-1234567.5] * 12 for _ in range(12)], False),  # cannot fit: no values written
    ],
)
def test_cell_values_fit_their_cells(matrix, annotated):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = convolution_figure(worked_convolution(matrix, TUTORIAL_KERNEL))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax_in, _, ax_out = fig.axes[:3]
    for ax in (ax_in, ax_out):
        (x0, _), (x1, _) = ax.transData.transform([(0, 0), (1, 0)])
        cell = x1 - x0  # pixels
        texts = [t for t in ax.texts if t.get_text()]
        assert annotated is None or bool(texts) == annotated
        widths = [t.get_window_extent(renderer).width for t in texts]
        assert max(widths, default=0) <= 0.85 * cell, (max(widths), cell)
        # the first column's values stay clear of the row numbers left of the cells
        left = ax.get_window_extent(renderer).x0
        assert all(t.get_window_extent(renderer).x0 > left + 1 for t in texts)


@pytest.mark.parametrize("args", [["conv"], ["model", "--model", "tutorial"]])
def test_a_closed_pipe_exits_0_like_predict(monkeypatch, args):
    """``mnistcnn explain conv | head -2``: the reader leaves; not an error, no traceback."""
    import errno

    import click

    monkeypatch.setattr("mnistcnn.cli.common._silence_stdout", lambda: None)
    lines: list[object] = []
    real_echo = click.echo

    def echo(message: object = None, *rest: object, **kwargs: object) -> None:
        lines.append(message)
        if len(lines) > 2:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        real_echo(message, *rest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(click, "echo", echo)
    r = CliRunner().invoke(main, ["explain", *args])
    assert r.exit_code == 0, (r.output, r.exception)
    assert len(lines) == 3 and "Traceback" not in r.output


def test_sums_that_overflow_are_refused_not_printed_as_inf():
    from mnistcnn.explain.conv_arithmetic import worked_convolution
    from mnistcnn.explain.conv_inputs import ConvInputError

    with pytest.raises(ConvInputError, match="overflow"):
        worked_convolution([[1e308, 1e308], [1e308, 1e308]], [[10.0]])
    assert worked_convolution([[1e300]], [[2.0]]).output == [[2e300]]  # large but finite
