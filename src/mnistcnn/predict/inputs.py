"""What ``mnistcnn predict`` reads: files, folders, globs, stdin, IDX files and Python objects.

:func:`expand_inputs` turns command-line arguments into :class:`InputItem`
objects, one per picture. Nothing is decoded yet, and a bad argument becomes
an item that carries its error, so one bad file never stops a batch:

* an image file in one of :data:`mnistcnn._io.IMAGE_FORMATS` (PNG, JPEG, GIF,
  BMP, WebP, TIFF, PBM/PGM/PPM, ICO, AVIF: the formats the server accepts too);
* a folder: the image files in it and its sub-folders (by extension, sorted);
* a glob pattern (``"scans/*.png"``, ``"**/*.jpg"``), sorted;
* ``-``: the bytes of standard input;
* an IDX file (MNIST's format; plain or ``.gz``, found by its magic number,
  not its name): one item per 28x28 image, named ``file#index``. Those images
  are already MNIST-style and go to the model as they are;
* a multi-page TIFF: one item per page (``file#page1``, ...).

:func:`python_inputs` does the same for what :meth:`~mnistcnn.predict.Predictor.predict`
is given (paths, bytes, arrays, Pillow images). Decoding, and what a file that
is not a picture is: :mod:`mnistcnn.predict.decoding`; arrays:
:mod:`mnistcnn.predict.arrays`.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from mnistcnn import _io
from mnistcnn._io import upright
from mnistcnn.predict.arrays import array_to_image, dataset_format
from mnistcnn.predict.decoding import (
    ImageInputError,
    gunzip_idx,
    gz_head,
    idx_images,
    is_idx,
    tiff_pages,
)
from mnistcnn.predict.preprocess import to_grayscale

#: File extensions a folder is searched for (lower case). Named files are never filtered.
IMAGE_SUFFIXES = frozenset(
    (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp")
    + (".pgm", ".ppm", ".pbm", ".pnm", ".ico", ".avif")
)
_TIFF_SUFFIXES = frozenset((".tif", ".tiff"))
#: Longest side of the copy of a picture kept for display (``keep_previews``).
PREVIEW_SIZE = 256

#: What :meth:`~mnistcnn.predict.Predictor.predict` accepts.
Input = str | os.PathLike[str] | bytes | np.ndarray | Image.Image


@dataclass(frozen=True)
class InputItem:
    """One picture to predict, not yet decoded.

    Exactly one of ``path``, ``data``, ``prepared`` is set, or ``error``.

    Attributes:
        name: how the input is reported: the path as given, ``-`` for stdin,
            ``file#12`` for image 12 of an IDX file.
        path: an image file, read when it is predicted.
        data: encoded image bytes (stdin).
        prepared: uint8 (28, 28), light ink on black: an IDX image, used as is.
        error: why this input cannot be predicted (a missing file, a bad IDX file).
        page: the page (frame) of a multi-page TIFF to predict, from 0; None:
            the first page of any picture.
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    prepared: np.ndarray | None = None
    error: str | None = None
    page: int | None = None


def _page_items(
    name: str, *, path: Path | None = None, data: bytes | None = None
) -> list[InputItem]:
    """One item per page of a multi-page TIFF (``name#page1``, ``name#page2``, ...), else one."""
    one = [InputItem(name, path=path, data=data)]
    try:
        with warnings.catch_warnings():  # only the header is read; decoding checks bombs
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            source = io.BytesIO(data) if data is not None else path
            with Image.open(source, formats=["TIFF"]) as img:  # type: ignore[arg-type]
                pages = tiff_pages(img)
    except Exception:  # not readable as a TIFF after all: decoding will say why
        return one
    if len(pages) <= 1:
        return one
    return [InputItem(f"{name}#page{i + 1}", path=path, data=data, page=i) for i in pages]


def items_from_bytes(name: str, data: bytes) -> list[InputItem]:
    """Items of one file's bytes: one per image of an IDX file (``name#i``), one per page
    of a multi-page TIFF (``name#page1``, ...), else one."""
    kind = _io.sniff(data[:4])
    if kind == "tiff":
        return _page_items(name, data=data)
    gz = kind == "gzip"
    if not is_idx(gz_head(data) if gz else data[:4]):
        return [InputItem(name, data=data)]
    try:
        images = idx_images(gunzip_idx(data) if gz else data)
    except ImageInputError as exc:
        return [InputItem(name, error=str(exc))]
    return [InputItem(f"{name}#{i}", prepared=images[i]) for i in range(len(images))]


def _file_items(path: Path, name: str) -> list[InputItem]:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            kind = _io.sniff(head)
            if kind in ("gzip", "idx"):
                return items_from_bytes(name, head + f.read())
    except OSError as exc:
        return [InputItem(name, error=f"cannot read: {exc.strerror or exc}")]
    if kind == "tiff":
        return _page_items(name, path=path)
    return [InputItem(name, path=path)]


def _folder_items(folder: Path) -> list[InputItem]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return [
        it
        for p in files
        for it in (
            _page_items(str(p), path=p)
            if p.suffix.lower() in _TIFF_SUFFIXES
            else [InputItem(str(p), path=p)]
        )
    ]


def no_pictures_message(specs: list[str]) -> str:
    """Why ``specs`` gave no picture (:func:`expand_inputs` returned nothing), naming each:
    ``no pictures found in scans/ (an empty folder)``."""
    whys = []
    for spec in specs:
        path = Path(spec)
        if not path.is_dir():
            whys.append(f"{spec} (no folder among its matches holds pictures)")
            continue
        files = [p for p in path.rglob("*") if p.is_file()]
        if not files:
            whys.append(f"{spec} (an empty folder)")
        else:
            names = ", ".join(sorted(IMAGE_SUFFIXES))
            whys.append(
                f"{spec} (a folder of {len(files)} file{'s' if len(files) != 1 else ''}, "
                f"none named as a picture: {names}; give a file by name to read it whatever "
                "its name)"
            )
    return "no pictures found in " + "; ".join(whys)


def expand_inputs(specs: list[str], stdin: BinaryIO | None = None) -> list[InputItem]:
    """Command-line inputs -> one :class:`InputItem` per picture, in the order given.

    Args:
        specs: files, folders, glob patterns, ``-`` (stdin) or IDX files (see
            the module docstring). A folder gives its image files only (by
            extension); IDX files must be named (or matched by a glob).
        stdin: binary stream ``-`` reads (``sys.stdin.buffer`` in the CLI).

    Returns:
        Items in argument order (folder and glob matches sorted). An argument
        that matches nothing gives one item with ``error`` set; an empty folder
        gives none.
    """
    items: list[InputItem] = []
    for spec in specs:
        if spec == "-":
            data = stdin.read() if stdin is not None else b""
            items += items_from_bytes("-", data)
            continue
        path = Path(spec)
        if path.is_dir():
            items += _folder_items(path)
        elif path.exists():
            items += _file_items(path, spec)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                items.append(InputItem(spec, error="no file matches this pattern"))
            for m in matches:
                mp = Path(m)
                items += _folder_items(mp) if mp.is_dir() else _file_items(mp, m)
        else:
            items.append(InputItem(spec, error="no such file or folder"))
    return items


def preview_copy(img: Image.Image) -> Image.Image:
    """A copy of ``img`` for display: RGB, RGBA or L, upright, longest side <= PREVIEW_SIZE px.

    Every mode Pillow decodes becomes one of the three modes a plot shows
    (matplotlib draws (H, W), (H, W, 3) and (H, W, 4) arrays, never two
    channels): grayscale with alpha (``LA``, ``La``, ``PA``) and palette
    transparency become RGBA; 1-bit, 16-bit, 32-bit and float pictures become L
    with the same scaling :func:`~mnistcnn.predict.preprocess.to_grayscale`
    uses; CMYK, YCbCr, LAB and HSV become RGB.
    """
    img = upright(img)
    mode = img.mode
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGB")
    elif mode not in ("RGB", "RGBA", "L"):
        if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB")
        else:
            img = Image.fromarray(np.round(to_grayscale(img) * 255).astype(np.uint8), "L")
    img = img.copy()
    img.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.LANCZOS)
    return img


def python_inputs(inputs: Iterable[Input]) -> list[tuple[str, InputItem | Image.Image]]:
    """Python inputs -> (name, item or Pillow image); paths of folders and IDX files expand."""
    out: list[tuple[str, InputItem | Image.Image]] = []
    for i, x in enumerate(inputs):
        if isinstance(x, Image.Image):
            out.append((getattr(x, "filename", "") or f"<image {i}>", x))
        elif isinstance(x, np.ndarray):
            name = f"<array {i}>"
            prepared = dataset_format(x)
            if prepared is not None:  # already what the model takes: no preparation
                out.append((name, InputItem(name, prepared=prepared)))
                continue
            try:
                out.append((name, array_to_image(x)))
            except ValueError as exc:
                out.append((name, InputItem(name, error=str(exc))))
        elif isinstance(x, (bytes, bytearray)):  # always one picture (1:1 for servers)
            out.append((f"<bytes {i}>", InputItem(f"<bytes {i}>", data=bytes(x))))
        elif isinstance(x, (str, os.PathLike)):
            out += [(it.name, it) for it in expand_inputs([os.fspath(x)])]
        else:
            error = f"unsupported input type {type(x).__name__}"
            out.append((f"<input {i}>", InputItem(f"<input {i}>", error=error)))
    return out
