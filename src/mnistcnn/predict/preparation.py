"""One picture -> the 28x28 image a model sees, without a model: what ``predict`` does first.

:class:`~mnistcnn.predict.Predictor` runs every picture through
:func:`prepare_item` / :func:`prepare_picture` and then through its model;
a picture-folder dataset (:mod:`mnistcnn.predict.folder_dataset`) runs every
file through the same two functions, so a model trained on your pictures saw
them exactly as ``mnistcnn predict`` will show it new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mnistcnn.predict.decoding import ImageInputError, check_size, decode_image, tiff_pages
from mnistcnn.predict.ink import InvertMode
from mnistcnn.predict.inputs import InputItem, preview_copy
from mnistcnn.predict.methods import MNIST_RECORD, in_dataset_format, prepare_by_method
from mnistcnn.predict.preprocess import PreprocessSettings, to_grayscale

log = logging.getLogger(__name__)


@dataclass
class PreparedPicture:
    """One picture made ready for a model (or why it could not be).

    Attributes:
        name: the input's name (as :attr:`Prediction.path <mnistcnn.predict.Prediction.path>`).
        image: uint8 (28, 28), 0 background .. 255 ink; None on error.
        error: why the picture could not be read or prepared (None when it was).
        blank: no ink was found (``image`` is all zeros).
        inverted: the picture was dark-on-light and was inverted (None when it
            was used as given, or on error).
        as_given: already in the dataset's own format (an IDX image, a 28x28
            picture of light ink on black): used as it is, not prepared.
        size: (width, height) of the (EXIF-rotated) picture in pixels, if decoded.
        preview: a small copy of the decoded picture (only when asked for).
    """

    name: str
    image: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None
    blank: bool = False
    inverted: bool | None = None
    as_given: bool = False
    size: tuple[int, int] | None = None
    preview: Image.Image | None = field(default=None, repr=False)


def given_format(
    image: Image.Image, invert: InvertMode, preparation: Mapping[str, Any] | None = None
) -> np.ndarray | None:
    """uint8 (28, 28) if ``image`` is a picture in the dataset's own format, else None.

    A 28x28 picture with light ink on a dark frame (see
    :func:`~mnistcnn.predict.arrays.dataset_format`; for Fashion-MNIST one dark
    side: :func:`~mnistcnn.predict.methods.in_dataset_format`), unless ``invert``
    is ``yes`` (the user says it is dark ink on light paper). ``preparation``:
    the model's preparation record (MNIST's when None).
    """
    if image.size != (28, 28) or invert == "yes":
        return None
    gray = np.round(to_grayscale(image) * 255.0).astype(np.uint8)
    return in_dataset_format(gray, preparation or MNIST_RECORD)


def prepare_picture(
    image: Image.Image,
    name: str = "<image>",
    invert: InvertMode = "auto",
    settings: PreprocessSettings | None = None,
    keep_preview: bool = False,
    preparation: Mapping[str, Any] | None = None,
) -> PreparedPicture:
    """Prepare one decoded picture the way the model's dataset made its images.

    ``preparation``: the model's preparation record (``TrainedModel.preparation``;
    MNIST's when None), carried out by
    :func:`~mnistcnn.predict.methods.prepare_by_method`.

    Never raises for a bad picture: a refused size, an unusual mode or damaged
    data Pillow only notices now give ``error``.
    """
    try:
        check_size(*image.size)
        given = given_format(image, invert, preparation)
        preview = preview_copy(image) if keep_preview else None
        if given is not None:  # already the model's input: no preparation
            blank = not given.any()
            return PreparedPicture(name, given, None, blank, None, True, image.size, preview)
        result = prepare_by_method(image, preparation or MNIST_RECORD, invert, settings)
    except ImageInputError as exc:
        return PreparedPicture(name, error=str(exc))
    except Exception as exc:  # one odd file must not stop a batch
        log.debug("%s: preprocessing failed", name, exc_info=True)
        error = f"cannot preprocess the picture: {type(exc).__name__}: {exc}"
        return PreparedPicture(name, error=error)
    blank = not result.ink_found
    return PreparedPicture(
        name, result.image, None, blank, result.inverted, False, result.size, preview
    )


def prepare_item(
    item: InputItem,
    invert: InvertMode = "auto",
    settings: PreprocessSettings | None = None,
    keep_preview: bool = False,
    preparation: Mapping[str, Any] | None = None,
) -> PreparedPicture:
    """Read, decode and prepare one :class:`~mnistcnn.predict.inputs.InputItem`
    (``preparation``: as :func:`prepare_picture`).

    Never raises for a bad input: a missing file, a file that is not a
    picture, a corrupt one: every failure is the result's ``error``.
    """
    if item.error is not None:
        return PreparedPicture(item.name, error=item.error)
    if item.prepared is not None:
        image = np.asarray(item.prepared, np.uint8)
        return PreparedPicture(item.name, image, blank=not image.any(), as_given=True)
    try:
        data = item.data if item.data is not None else Path(item.path or "").read_bytes()
        picture = decode_image(data, item.page)
    except ImageInputError as exc:
        return PreparedPicture(item.name, error=str(exc))
    except OSError as exc:
        return PreparedPicture(item.name, error=f"cannot read: {exc.strerror or exc}")
    except Exception as exc:  # a decoder bug on a hostile file: report, carry on
        log.debug("%s: decoding failed", item.name, exc_info=True)
        error = f"cannot decode the picture: {type(exc).__name__}: {exc}"
        return PreparedPicture(item.name, error=error)
    if item.page is None and len(tiff_pages(picture)) > 1:
        log.warning(
            "%s: a %d-page TIFF; only page 1 is predicted (give it as a path "
            "to predict every page)",
            item.name,
            len(tiff_pages(picture)),
        )
    with picture:
        return prepare_picture(picture, item.name, invert, settings, keep_preview, preparation)
