"""mnistcnn._io: atomic writes, sniffing, IDX headers, and the one image decoder."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import idx_bytes
from mnistcnn import _io
from mnistcnn._io import ImageInputError
from mnistcnn._io import decode_picture as predict_decode
from mnistcnn.serve.inputs import InputError, RawInput, decode_images

# --- atomic writes ------------------------------------------------------------------------


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    "content", [b"new \x00 bytes", "new text \u00e9\r\n", lambda fh: fh.write(b"from a writer")]
)
def test_atomic_write_replaces_the_file(tmp_path, content):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    assert _io.atomic_write(path, content) == path
    expected = {bytes: content, str: str(content).encode()}.get(type(content), b"from a writer")
    assert path.read_bytes() == expected  # text: utf-8, newlines as given
    assert _names(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("error", [ValueError("disk on fire"), KeyboardInterrupt()])
def test_atomic_write_leaves_the_old_file_when_the_writer_raises(tmp_path, error):
    path = tmp_path / "best.pt"
    path.write_bytes(b"the previous checkpoint")
    seen = []

    def writer(fh):
        fh.write(b"half a checkpoint")
        seen.extend(_names(tmp_path))  # the temporary file exists beside the destination
        raise error

    with pytest.raises(type(error)):
        _io.atomic_write(path, writer)
    assert path.read_bytes() == b"the previous checkpoint"
    assert _names(tmp_path) == ["best.pt"]  # no temporary file left
    (tmp,) = [n for n in seen if n != "best.pt"]
    assert tmp.startswith(".best.pt.") and _io.is_temp_file_name(tmp)


def test_atomic_write_fails_cleanly_when_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text("{}")

    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="No space left"):
        _io.atomic_write(path, "{...}")
    monkeypatch.undo()
    assert path.read_text() == "{}" and _names(tmp_path) == ["config.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_mode_is_0666_less_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = _io.atomic_write(tmp_path / "f.csv", "a,b\n")
        with _io.atomic_path(tmp_path / "g.idx") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for p in (path, tmp_path / "g.idx"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


def test_atomic_write_suffix_and_missing_folder(tmp_path):
    seen = []
    _io.atomic_write(tmp_path / "c.png", lambda fh: seen.extend(_names(tmp_path)), suffix=".png")
    (tmp,) = seen
    assert tmp.endswith(".tmp.png") and _io.TEMP_FILE_PATTERN.match(tmp)
    with pytest.raises(FileNotFoundError):
        _io.atomic_write(tmp_path / "no" / "such" / "f", b"x")


def test_atomic_path_renames_on_success_and_removes_on_error(tmp_path):
    final = tmp_path / "train-images-idx3-ubyte"
    with _io.atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and tmp.read_bytes() == b""
        assert not final.exists()
        tmp.write_bytes(b"complete")
    assert final.read_bytes() == b"complete" and _names(tmp_path) == [final.name]
    with pytest.raises(KeyboardInterrupt), _io.atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert final.read_bytes() == b"complete" and _names(tmp_path) == [final.name]


def test_temp_names_are_unique_and_recognised(tmp_path):
    fds = [_io.new_temp_file(tmp_path, "metrics.csv") for _ in range(20)]
    for fd, _ in fds:
        os.close(fd)
    names = {Path(p).name for _, p in fds}
    assert len(names) == 20 and all(_io.is_temp_file_name(n) for n in names)
    for name in ("metrics.csv", ".lock", "curves.png", ".verified.json", "a.tmp"):
        assert not _io.is_temp_file_name(name), name


# --- sniffing -----------------------------------------------------------------------------


def _encoded(fmt: str, size: tuple[int, int] = (32, 32), mode: str = "L", **kw) -> bytes:
    img = Image.new(mode, size, 0)
    img.paste("white", (8, 8, 24, 24))
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _ftyp(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\0\0\0\0" + brand + b"mif1"


SNIFFED = [
    (b"", "empty"),
    (_encoded("PNG"), "png"),
    (_encoded("JPEG"), "jpeg"),
    (_encoded("GIF"), "gif"),
    (_encoded("TIFF"), "tiff"),
    (_encoded("WEBP"), "webp"),
    (_encoded("BMP"), "bmp"),
    (_encoded("ICO"), "ico"),
    (_encoded("PPM"), "pnm"),
    (b"P1\n2 2\n0 1 1 0\n", "pnm"),
    (_ftyp(b"avif"), "avif"),
    (_ftyp(b"heic"), "heic"),
    (_ftyp(b"isom"), "isobmff"),
    (b"%PDF-1.7\n", "pdf"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n", "postscript"),
    (b"\x89HDF\r\n\x1a\n\0\0", "hdf5"),
    (gzip.compress(b"hello"), "gzip"),
    (b"\x08\x01\x12\x07pytorch", "protobuf"),
    (b"PK\x03\x04archive/data.pkl", "zip"),
    (pickle.dumps({"a": 1}, protocol=2), "pickle"),
    (idx_bytes(np.zeros((2, 28, 28), np.uint8)), "idx"),
    (idx_bytes(np.zeros(5, np.uint8)), "idx"),
    (b'{\n  "lr": 0.01\n}\n', "json"),
    (b"[1, 2, 3]", "json"),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "svg"),
    (b"<svg width='10'/>", "svg"),
    (b"\xef\xbb\xbf<!DOCTYPE html><html><body>404</body></html>", "html"),
    (b"<!-- proxy -->\n<HTML><body>login</body></html>", "html"),
    (b"\x00\xffgarbage <html> in binary", "html"),  # a page that is not UTF-8
    (b'<?xml version="1.0"?><feed/>', "xml"),
    (b"best run: 98.75%\n", "text"),
    ("naïve \u00e9".encode(), "text"),
    (b"\x00\x01\x02\x03\x04", "binary"),
    (b"\xde\xad\xbe\xef" * 10, "binary"),
]


@pytest.mark.parametrize(
    ("head", "kind"), SNIFFED, ids=[f"{k}{i}" for i, (_, k) in enumerate(SNIFFED)]
)
def test_sniff_names_each_kind(head, kind):
    assert _io.sniff(head) == kind
    assert _io.describe_kind(kind)[0].isalpha()  # words exist for every kind


def test_sniff_file_and_words(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(_encoded("PNG") + b"\0" * 10_000)
    kind, head = _io.sniff_file(path)
    assert kind == "png" and len(head) == _io.SNIFF_BYTES
    assert _io.describe_kind("png") == "a PNG image"
    assert _io.describe_kind("empty") == "an empty file (0 bytes)"
    assert set(_io.KIND_WORDS) >= {k for _, k in SNIFFED}
    with pytest.raises(KeyError):
        _io.describe_kind("nonsense")
    with pytest.raises(FileNotFoundError):
        _io.sniff_file(tmp_path / "missing")


def test_checkpoint_data_and_predict_use_the_same_sniffer(tmp_path):
    from mnistcnn.artifact import describe_non_checkpoint
    from mnistcnn.data._files import sniff as data_sniff

    page = b"<!DOCTYPE html><html><body>404</body></html>"
    assert data_sniff(page) == "html" and data_sniff(gzip.compress(b"x")) == "gzip"
    assert data_sniff(idx_bytes(np.zeros(3, np.uint8))) == "idx" and data_sniff(b"") == "empty"
    assert data_sniff(b"PK\x03\x04") == "unknown"
    (tmp_path / "p.pt").write_bytes(page)
    assert describe_non_checkpoint(tmp_path / "p.pt").startswith("an HTML page")
    (tmp_path / "z.pt").write_bytes(b"PK\x03\x04rest")
    assert describe_non_checkpoint(tmp_path / "z.pt") is None  # a zip: left to torch.load
    (tmp_path / "b.pt").write_bytes(b"\xde\xad\xbe\xef\x01\x02\x03\x04\x05")
    assert describe_non_checkpoint(tmp_path / "b.pt") == (
        "binary data that is not a torch file (starts de ad be ef 01 02 03 04)"
    )


# --- IDX ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28),
        np.array([3, 1, 4, 1, 5], np.uint8),
        np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
        np.array([[-5, 300], [7, -32768]], np.int16),
        np.zeros((0, 28, 28), np.uint8),
    ],
    ids=["images", "labels", "float32", "int16", "empty"],
)
def test_idx_round_trip(array):
    data = idx_bytes(array)
    header = _io.parse_idx_header(data[:64], len(data))
    assert header.shape == array.shape and header.total_bytes == len(data)
    got = _io.idx_array(data)
    assert got.dtype == array.dtype and got.shape == array.shape and np.array_equal(got, array)


def test_idx_header_errors():
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    cases = [
        (b"\x89PNG\r\n\x1a\n", None, "magic", "no IDX magic"),
        (b"\0\0\x0a\x01" + b"\0" * 4, None, "magic", "no IDX magic"),  # 0x0a: no such type
        (b"\0\0\x08\x00", None, "magic", "no IDX magic"),  # 0 dims
        (b"\0\0\x08\x28" + b"\0" * 200, None, "dims", "40 dimensions; at most 32"),
        (good[:10], None, "header", "an IDX header with 3 dims needs 16"),
        (good, len(good) - 100, "size", "but the file has 1484 bytes: truncated"),
        (good, len(good) + 1, "size", "it has trailing bytes"),
        (b"\0\0\x08\x03" + b"\xff\xff\xff\xff" * 3, 16, "size", "file has 16 bytes"),
    ]
    for head, size, reason, words in cases:
        with pytest.raises(_io.IdxFormatError, match=words) as err:
            _io.parse_idx_header(head, size)
        assert err.value.reason == reason and isinstance(err.value, ValueError)
    huge = b"\0\0\x0e\x03" + b"\xff\xff\xff\xff" * 3  # 8-byte elements: beyond intp
    with pytest.raises(_io.IdxFormatError, match="too large for an array") as err:
        _io.parse_idx_header(huge)
    assert err.value.reason == "too_large"
    with pytest.raises(_io.IdxFormatError, match="truncated") as err:
        _io.idx_array(good[:-1])
    assert err.value.reason == "size" and err.value.header.shape == (2, 28, 28)


def test_data_and_predict_word_idx_errors_their_own_way(tmp_path):
    from mnistcnn._io import idx_images
    from mnistcnn.data.errors import IDXError
    from mnistcnn.data.idx import read_idx_header

    raw = idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-100]
    (tmp_path / "cut").write_bytes(raw)
    with pytest.raises(IDXError, match=r"cut: its header says .* truncated .* fetch the dataset"):
        read_idx_header(tmp_path / "cut")
    with pytest.raises(ImageInputError, match=r"says 1584 bytes, the file has 1484 \(truncated"):
        idx_images(raw)


# --- images -------------------------------------------------------------------------------

ALLOWED = ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "ICO", "AVIF"]
#: Formats Pillow reads (and writes, for the test) that are not on the allow-list.
REFUSED = ["TGA", "PCX", "SGI", "QOI", "DDS", "EPS"]


def test_one_allow_list():
    from mnistcnn.serve import inputs as serve_inputs

    assert tuple(ALLOWED) == _io.IMAGE_FORMATS
    assert serve_inputs.IMAGE_FORMATS is _io.IMAGE_FORMATS
    assert set(_io.accepted_formats()) <= set(ALLOWED) and "EPS" not in _io.IMAGE_FORMATS


def _sample(fmt: str) -> bytes:
    if fmt == "EPS":
        return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n"
    if fmt in ("DDS", "QOI"):
        return _encoded(fmt, mode="RGBA")
    return _encoded(fmt, mode="RGB" if fmt in ("JPEG", "WEBP", "AVIF", "SGI") else "L")


def _serve_accepts(data: bytes) -> bool:
    try:
        decode_images([RawInput("body", data)], max_side=8192, max_pixels=40_000_000)
    except InputError as exc:
        assert exc.status == 422 and "accepted formats: PNG, JPEG" in exc.message
        return False
    return True


def _predict_accepts(data: bytes) -> bool:
    try:
        predict_decode(data)
    except ImageInputError as exc:
        assert "not an image format accepted here" in str(exc) or "text file" in str(exc)
        return False
    return True


@pytest.mark.parametrize("fmt", ALLOWED)
def test_each_allowed_format_decodes_in_io_predict_and_serve(fmt):
    if fmt not in _io.accepted_formats():
        pytest.skip(f"this Pillow has no {fmt} decoder")
    data = _sample(fmt)
    img = _io.decode_image(data)
    assert img.size == (32, 32) and img.format in (fmt, "MPO")
    assert np.asarray(img.convert("L"))[16, 16] > 200  # the pixels are decoded
    assert _predict_accepts(data) and _serve_accepts(data)


@pytest.mark.parametrize("fmt", REFUSED)
def test_formats_off_the_list_are_refused_alike(fmt):
    data = _sample(fmt)
    if fmt != "EPS":  # Pillow itself reads it: only the allow-list refuses it
        assert Image.open(io.BytesIO(data)).format == fmt
    with pytest.raises(_io.ImageDecodeError) as err:
        _io.decode_image(data)
    assert err.value.reason == "format"
    assert not _predict_accepts(data) and not _serve_accepts(data)


def test_predict_and_serve_decide_alike_on_every_sample():
    for fmt in ALLOWED + REFUSED:
        if fmt in ALLOWED and fmt not in _io.accepted_formats():
            continue
        data = _sample(fmt)
        assert _predict_accepts(data) == _serve_accepts(data) == (fmt in ALLOWED), fmt


def test_decode_errors_have_reasons(tmp_path, monkeypatch):
    cases = [
        (b"", "empty"),
        (b"hello", "format"),
        (_ftyp(b"heic") + b"\0" * 100, "format"),
        (_encoded("PNG")[:60], "corrupt"),
    ]
    for data, reason in cases:
        with pytest.raises(_io.ImageDecodeError) as err:
            _io.decode_image(data)
        assert err.value.reason == reason, data[:20]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    big = _encoded("PNG", (30, 30))  # 900 pixels: Pillow only warns (under 2 x 500)
    with pytest.raises(_io.ImageDecodeError) as err:
        _io.decode_image(big)
    assert err.value.reason == "bomb" and "900 pixels" in err.value.detail
    with pytest.warns(Image.DecompressionBombWarning):
        assert _io.decode_image(big, strict_bombs=False).size == (30, 30)


def test_decode_from_a_path_with_a_size_check(tmp_path):
    path = tmp_path / "d.png"
    path.write_bytes(_encoded("PNG", (40, 20)))
    assert _io.decode_image(path).size == (40, 20)
    sizes = []
    img = _io.decode_image(path, check_size=lambda w, h: sizes.append((w, h)))
    assert sizes == [(40, 20)] and img.size == (40, 20)

    def refuse(w, h):
        raise RuntimeError(f"{w}x{h} refused")

    with pytest.raises(RuntimeError, match="40x20 refused"):
        _io.decode_image(path, check_size=refuse)
    with pytest.raises(FileNotFoundError):
        _io.decode_image(tmp_path / "missing.png")


def test_open_image_reads_the_header_only():
    data = _encoded("PNG", (50, 40))
    img = _io.open_image(data[:-30])  # the pixels are cut off: opening still works
    assert img.size == (50, 40)
    with pytest.raises(_io.ImageDecodeError) as err:
        _io.load_image(img)
    assert err.value.reason == "corrupt"


def test_upright_follows_exif_orientation():
    img = Image.new("L", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    decoded = _io.decode_image(buf.getvalue())
    assert decoded.size == (40, 20) and _io.upright(decoded).size == (20, 40)
    plain = _io.decode_image(_encoded("PNG"))
    assert _io.upright(plain).size == plain.size
