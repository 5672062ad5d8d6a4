"""What ``mnistcnn predict`` reads: files, folders, globs, stdin, IDX files and Python objects.

:func:`expand_inputs` turns command-line arguments into :class:`InputItem`
objects, one per picture. Nothing is decoded yet, and a bad argument becomes
an item that carries its error, so one bad file never stops a batch:

* an image file in one of :data:`mnistcnn._io.IMAGE_FORMATS` (PNG, JPEG, GIF,
  BMP, WebP, TIFF, PBM/PGM/PPM, ICO, AVIF: the formats the server accepts too);
* a folder: the pictures in it and its sub-folders (named as one, or whose first
  bytes are one; sorted), the other files counted by why they were not read;
* a glob pattern (``"scans/*.png"``, ``"**/*.jpg"``), sorted;
* ``-``: the bytes of standard input;
* an IDX file (MNIST's format; plain or ``.gz``, found by its magic number,
  not its name): one item per 28x28 image, named ``file#index``. Those images
  are already MNIST-style and go to the model as they are;
* a multi-page TIFF: one item per page (``file#page1``, ...).

:func:`python_inputs` does the same for what :meth:`~mnistcnn.predict.Predictor.predict`
is given (paths, bytes, arrays, Pillow images). Decoding, and what a file that
is not a picture is: :mod:`mnistcnn._io.pictures`; arrays are pictures the
preparation reads (:mod:`mnistcnn.prepare.pixels`).
"""

from __future__ import annotations

import collections
import glob
import io
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from mnistcnn import _io
from mnistcnn._io.pictures import (
    ImageInputError,
    gunzip_idx,
    gz_head,
    idx_images,
    is_idx,
    tiff_pages,
)
from mnistcnn.prepare import Preparation, PreparedPicture

log = logging.getLogger(__name__)


def _picture_suffixes() -> frozenset[str]:
    """The extensions Pillow registers for the decoders :data:`mnistcnn._io.IMAGE_FORMATS`
    allows (``.jfif``, ``.apng``, ``.avifs``, ...), lower case."""
    Image.init()
    accepted = set(_io.accepted_formats())
    return frozenset(e.lower() for e, f in Image.registered_extensions().items() if f in accepted)


#: File extensions a folder's pictures are found by at once (lower case), derived from the
#: decoders' allow-list; a file named otherwise is a picture when its first bytes are one
#: of those formats (``.pjpeg``, no extension). Named files are never filtered.
IMAGE_SUFFIXES = _picture_suffixes()
_TIFF_SUFFIXES = frozenset((".tif", ".tiff"))

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


#: Why a file in a folder was not read (:func:`expand_inputs`'s ``skipped``): "hidden",
#: "unreadable", or what the file is (:func:`mnistcnn._io.describe_kind`: "a text file").
Skipped = collections.Counter


def _folder_items(folder: Path, skipped: Skipped[str] | None = None) -> list[InputItem]:
    """The pictures in ``folder`` and its sub-folders, sorted: files named as pictures
    (:data:`IMAGE_SUFFIXES`), and others whose first bytes are an accepted picture format.
    Hidden files, unreadable ones and the rest are counted in ``skipped`` by reason."""
    skipped = skipped if skipped is not None else collections.Counter()
    items: list[InputItem] = []
    accepted = set(_io.accepted_formats())
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            skipped["hidden"] += 1
            continue
        tiff = p.suffix.lower() in _TIFF_SUFFIXES
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            try:
                kind, _ = _io.sniff_file(p)
            except OSError:
                skipped["unreadable"] += 1
                continue
            if _io.KIND_FORMATS.get(kind) not in accepted:  # IDX files too: name them
                skipped[_io.describe_kind(kind)] += 1
                continue
            tiff = kind == "tiff"
        items += _page_items(str(p), path=p) if tiff else [InputItem(str(p), path=p)]
    return items


def skipped_note(skipped: Skipped[str]) -> str:
    """``3 files in the folders were not read: 2 a text file, 1 hidden`` (empty: "")."""
    if not skipped:
        return ""
    total = sum(skipped.values())
    parts = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items(), key=lambda x: -x[1]))
    were = "were" if total != 1 else "was"
    return f"{total} file{'s' if total != 1 else ''} in the folders {were} not read: {parts}"


def no_pictures_message(specs: list[str]) -> str:
    """Why ``specs`` gave no picture (:func:`expand_inputs` returned nothing), naming each:
    ``no pictures found in scans/ (an empty folder)``, ``... (2 files, none a picture:
    2 a text file)``."""
    whys = []
    for spec in specs:
        path = Path(spec)
        if not path.is_dir():
            whys.append(f"{spec} (no folder among its matches holds pictures)")
            continue
        skipped: Skipped[str] = collections.Counter()
        _folder_items(path, skipped)
        total = sum(skipped.values())
        if not total:
            whys.append(f"{spec} (an empty folder)")
            continue
        parts = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items(), key=lambda x: -x[1]))
        whys.append(f"{spec} ({total} file{'s' if total != 1 else ''}, none a picture: {parts})")
    return "no pictures found in " + "; ".join(whys)


def expand_inputs(
    specs: list[str], stdin: BinaryIO | None = None, skipped: Skipped[str] | None = None
) -> list[InputItem]:
    """Command-line inputs -> one :class:`InputItem` per picture, in the order given.

    Args:
        specs: files, folders, glob patterns, ``-`` (stdin) or IDX files (see
            the module docstring). A folder gives its pictures only: files named
            as one (:data:`IMAGE_SUFFIXES`) or whose first bytes are one; IDX
            files must be named (or matched by a glob).
        stdin: binary stream ``-`` reads (``sys.stdin.buffer`` in the CLI).
        skipped: counts, by reason, the files of folders that were not read
            (hidden, unreadable, not a picture: :func:`skipped_note` says them).

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
            items += _folder_items(path, skipped)
        elif path.exists():
            items += _file_items(path, spec)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                items.append(InputItem(spec, error="no file matches this pattern"))
            for m in matches:
                mp = Path(m)
                items += _folder_items(mp, skipped) if mp.is_dir() else _file_items(mp, m)
        else:
            items.append(InputItem(spec, error="no such file or folder"))
    return items


def python_inputs(
    inputs: Iterable[Input],
) -> list[tuple[str, InputItem | Image.Image | np.ndarray]]:
    """Python inputs -> (name, item, Pillow image or array); paths of folders and IDX files expand.

    Pillow images and arrays are pictures already decoded: they go to the
    preparation as they are (:class:`mnistcnn.prepare.Preparation` reads arrays).
    """
    out: list[tuple[str, InputItem | Image.Image | np.ndarray]] = []
    for i, x in enumerate(inputs):
        if isinstance(x, Image.Image):
            out.append((getattr(x, "filename", "") or f"<image {i}>", x))
        elif isinstance(x, np.ndarray):
            out.append((f"<array {i}>", x))
        elif isinstance(x, (bytes, bytearray)):  # always one picture (1:1 for servers)
            out.append((f"<bytes {i}>", InputItem(f"<bytes {i}>", data=bytes(x))))
        elif isinstance(x, (str, os.PathLike)):
            out += [(it.name, it) for it in expand_inputs([os.fspath(x)])]
        else:
            error = f"unsupported input type {type(x).__name__}"
            out.append((f"<input {i}>", InputItem(f"<input {i}>", error=error)))
    return out


def read_item(item: InputItem) -> Image.Image:
    """Read and decode one :class:`InputItem` (:func:`mnistcnn._io.decode_picture`).

    A multi-page TIFF given without a page gives its first page (logged as a warning).

    Raises:
        ImageInputError: every way it fails, in words: a file that cannot be
            read, is not a picture, is corrupt, or a decoder failure.
    """
    try:
        data = item.data if item.data is not None else Path(item.path or "").read_bytes()
        picture = _io.decode_picture(data, item.page)
    except ImageInputError:
        raise
    except OSError as exc:
        raise ImageInputError(f"cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # a decoder bug on a hostile file: report, carry on
        log.debug("%s: decoding failed", item.name, exc_info=True)
        raise ImageInputError(f"cannot decode the picture: {type(exc).__name__}: {exc}") from None
    if item.page is None and len(tiff_pages(picture)) > 1:
        log.warning(
            "%s: a %d-page TIFF; only page 1 is predicted (give it as a path "
            "to predict every page)",
            item.name,
            len(tiff_pages(picture)),
        )
    return picture


def prepare_picture(
    picture: Image.Image | np.ndarray, preparation: Preparation, keep_preview: bool = False
) -> PreparedPicture:
    """``preparation(picture)``, every failure an :class:`ImageInputError` in words.

    A refused size says so; a bad array says what was expected; any other
    failure (an unusual mode, damaged data Pillow only notices now) is
    ``cannot preprocess the picture: <error>``, so one odd file never stops a batch.
    """
    try:
        return preparation(picture, keep_preview=keep_preview)
    except ImageInputError:
        raise
    except Exception as exc:
        if isinstance(exc, ValueError) and isinstance(picture, np.ndarray):
            raise ImageInputError(str(exc)) from None  # an array of another shape or range
        log.debug("preparation failed", exc_info=True)
        raise ImageInputError(
            f"cannot preprocess the picture: {type(exc).__name__}: {exc}"
        ) from None


def prepare_item(
    item: InputItem, preparation: Preparation, keep_preview: bool = False
) -> PreparedPicture:
    """Read, decode (:func:`read_item`) and prepare (:func:`prepare_picture`) one item.

    An IDX image (``item.prepared``) is already the model's input: used as given.

    Raises:
        ImageInputError: the item's own error, or why it could not be read,
            decoded or prepared.
    """
    if item.error is not None:
        raise ImageInputError(item.error)
    if item.prepared is not None:
        return preparation.as_given(np.asarray(item.prepared, np.uint8))
    with read_item(item) as picture:
        return prepare_picture(picture, preparation, keep_preview)
