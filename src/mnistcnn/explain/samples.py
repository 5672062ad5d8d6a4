"""The image ``mnistcnn explain activations`` looks at: a picture file or a dataset sample.

A picture is read as ``mnistcnn predict`` reads it (:mod:`mnistcnn.predict`);
a sample is written ``DATASET:SPLIT:INDEX`` (e.g. ``mnist:test:123``,
``fashion-mnist:train:0``; index 0-based) and carries its true label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistcnn.errors import SettingError

_SAMPLE_REF = re.compile(r"^(?P<dataset>[a-z][a-z0-9_-]*):(?P<split>train|test):(?P<index>\d+)$")


@dataclass
class InputImage:
    """One image ready for a 28x28 model.

    pixels: float32 (H, W) in [0, 1], light ink on a black background (as MNIST
    is stored), before the model's normalization. label: the true class index
    for dataset samples, else None. name: a short, file-name-safe name
    (``mnist-test-123`` or the file's stem). preprocessing: how a file was
    turned into ``pixels`` (empty for dataset samples).
    """

    pixels: torch.Tensor
    source: str
    name: str
    label: int | None = None
    preprocessing: str = ""


def parse_sample_ref(text: str) -> tuple[str, bool, int] | None:
    """``"mnist:test:123"`` -> ``("mnist", False, 123)`` (name, is-train, index); else None."""
    match = _SAMPLE_REF.match(text.strip().lower())
    if match is None:
        return None
    return match["dataset"], match["split"] == "train", int(match["index"])


def load_input(
    image: str,
    *,
    data_root: str | Path | None = None,
    mirror: str | Path | None = None,
    classes: Sequence[str] | None = None,
    model_dataset: str = "",
) -> InputImage:
    """Load IMAGE: an existing picture file, else a ``DATASET:SPLIT:INDEX`` reference.

    Files go through :func:`load_image_file`; references are read with
    :func:`mnistcnn.data.load_arrays` (``data_root``/``mirror`` as there),
    after :func:`check_classes` when the model's ``classes`` are given
    (``model_dataset``: the dataset it was trained on, for the message).

    Raises:
        ValueError: a missing file ("no such file" when IMAGE has a path
            separator or an image extension), a folder, neither a readable
            file nor a valid reference, an unknown
            dataset, the model's classes are not the dataset's, or the index
            is past the end of the split.
        mnistcnn.data.DataError: the dataset cannot be obtained.
    """
    path = Path(image)
    if path.is_file():
        pixels, how = load_image_file(path)
        return InputImage(pixels, str(path), path.stem, preprocessing=how)
    ref = parse_sample_ref(image)
    if ref is None:
        if path.is_dir():
            raise SettingError(f"{image}: a folder, not an image file", path=image)
        if _looks_like_a_path(image):
            raise SettingError(f"{image}: no such file", path=image)
        raise SettingError(
            f"{image!r} is neither an image file nor a dataset sample such as mnist:test:123"
        )
    from mnistcnn.data import load_arrays

    name, train, index = ref
    if classes is not None:
        check_classes(image, name, classes, model_dataset)
    images, labels = load_arrays(name, train=train, root=data_root, mirror=mirror)
    split = "train" if train else "test"
    if index >= len(labels):
        raise SettingError(
            f"{image}: index {index} is past the end of the {split} split ({len(labels)} images)"
        )
    pixels = images[index].float() / 255.0  # (28, 28) in [0, 1]
    return InputImage(pixels, image, f"{name}-{split}-{index}", int(labels[index]))


def _looks_like_a_path(text: str) -> bool:
    """True for ``pics/x``, ``x.png``, ``~/x.jpeg``: a file name, not a dataset reference."""
    from PIL import Image

    if "/" in text or "\\" in text or text.startswith("~"):
        return True
    suffix = Path(text).suffix.lower()
    return bool(suffix) and suffix in Image.registered_extensions()


def check_classes(
    image: str, dataset: str, classes: Sequence[str], model_dataset: str = ""
) -> None:
    """Refuse to explain a sample of ``dataset`` with a model of other ``classes``.

    Names are compared as predictions report them (``"7 - seven"`` as ``"7"``),
    so checkpoints that store plain ``"0".."9"`` match MNIST's digits.

    Raises:
        ValueError: unknown ``dataset``, or ``classes`` are not its classes
            (e.g. a Fashion-MNIST model and an MNIST digit): the true label
            would be named wrongly and the prediction would mean nothing.
    """
    from mnistcnn.data import check_model_classes

    advice = "explain one of the model's own samples"
    if model_dataset:
        advice += f", e.g. {model_dataset}:test:0"
    check_model_classes(classes, dataset, subject=image, model_dataset=model_dataset, advice=advice)


def load_image_file(path: str | Path) -> tuple[torch.Tensor, str]:
    """A picture as float32 (28, 28) in [0, 1], light ink on black like MNIST.

    Read as ``mnistcnn predict`` reads it: :func:`mnistcnn._io.decode_picture`
    (formats, EXIF, refused bombs and sizes) and MNIST's
    :class:`mnistcnn.prepare.Preparation` (transparency, polarity, MNIST's
    own recipe: ink found, fitted into 20x20, centred by mass). A blank picture
    gives all zeros (:func:`mnistcnn.explain.activations.explain_for_predictor` says it is unsure).

    Returns:
        (pixels, a few words on how it was preprocessed).

    Raises:
        ValueError: the file cannot be read as a picture of a digit (the
            message is predict's: empty, not an image, 1x1 px, ...).
    """
    from mnistcnn._io import ImageInputError, decode_picture
    from mnistcnn.prepare import Preparation

    try:
        with decode_picture(Path(path).read_bytes()) as picture:
            result = Preparation().apply(picture)
    except ImageInputError as exc:
        raise SettingError(f"cannot read image {path}: {exc}", path=path) from None
    except OSError as exc:
        raise SettingError(f"cannot read image {path}: {exc.strerror or exc}", path=path) from None
    pixels = torch.from_numpy(result.image).float() / 255.0  # (28, 28)
    return pixels, describe_preprocessing(result.ink_found, result.inverted)


def describe_preprocessing(ink_found: bool, inverted: bool | None) -> str:
    """A few words on how a picture became the 28x28 input (for the output)."""
    if not ink_found:
        return "no ink found: a blank 28x28 input"
    how = "MNIST-style: ink fitted into 20x20, centred by mass in 28x28"
    return how + (", inverted (dark ink on light)" if inverted else "")
