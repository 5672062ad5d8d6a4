"""One picture -> the 28x28 image a model sees: :class:`Preparation`, :class:`PreparedPicture`.

A :class:`Preparation` is a method (a dataset's way of making its images,
:mod:`mnistcnn.prepare.methods`) with its settings; it is what a trained model
carries (``TrainedModel.prepare``, as torchvision binds ``weights.transforms()``
to the weights) and what ``predict``, ``serve``, ``explain`` and picture-folder
training call. Calling it on a decoded picture runs, in order:

1. the size check (:func:`mnistcnn._io.check_size`: a digit picture is at
   least 8 px a side, at most 20:1);
2. grey values (:func:`mnistcnn.prepare.pixels.to_grayscale`, or an array's
   range rule, :func:`mnistcnn.prepare.pixels.array_to_image`);
3. a picture already in the dataset's own format (28x28, light ink on a dark
   background: :func:`mnistcnn.prepare.pixels.dataset_format`) is used as
   it is;
4. otherwise the method's ink-finding step (:mod:`mnistcnn.prepare.locate`)
   and its crop -> 28x28 step (:mod:`mnistcnn.prepare.fit`).

Nothing here imports torch: :attr:`PreparedPicture.array` is NumPy, and
:attr:`PreparedPicture.tensor` imports torch only when asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mnistcnn._io import check_size
from mnistcnn.prepare.fit import Box, center_of_mass
from mnistcnn.prepare.ink import INVERT_MODES, InvertMode
from mnistcnn.prepare.locate import InkCrop
from mnistcnn.prepare.methods import METHODS, Method, geometry, method_of
from mnistcnn.prepare.pixels import array_to_image, dataset_format, preview_copy, to_grayscale
from mnistcnn.prepare.records import PREPARATIONS
from mnistcnn.prepare.settings import PreparationSettings

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, eq=False)
class PreparedPicture:
    """One picture made ready for a model, and what the preview and explanations need.

    Attributes:
        image: uint8 (canvas, canvas), 0 background .. 255 ink (the datasets'
            8-bit format). All zeros when no ink was found.
        inverted: the picture was dark-on-light and was inverted; None when it
            was used as given.
        ink_found: False for a blank picture (nothing above the noise).
        bbox: the crop's box in the (EXIF-rotated) source picture,
            ``(left, top, right, bottom)`` in pixels, right/bottom exclusive;
            None when blank or used as given.
        center_of_mass: (row, col) of ``image``'s intensity centre, pixel ``i``
            at coordinate ``i``; None when blank.
        size: (width, height) of the (EXIF-rotated) source picture in pixels.
        as_given: the picture was already in the dataset's own format (an IDX
            image, a 28x28 picture of light ink on black) and is used unchanged.
        ink: float32 (h, w) in [0, 1]: the cleaned ink (or product) that was
            fitted into the canvas, background 0; None when blank or as given.
        preview: a small displayable copy of the source picture
            (:func:`~mnistcnn.prepare.pixels.preview_copy`), when asked for.
    """

    image: np.ndarray = field(repr=False)
    inverted: bool | None
    ink_found: bool
    bbox: Box | None = None
    center_of_mass: tuple[float, float] | None = None
    size: tuple[int, int] | None = None
    as_given: bool = False
    ink: np.ndarray | None = field(default=None, repr=False)
    preview: Image.Image | None = field(default=None, repr=False)

    @property
    def blank(self) -> bool:
        """No ink: ``image`` is all zeros and is not shown to a model."""
        return not self.ink_found

    @property
    def array(self) -> np.ndarray:
        """The model's input: float32 (1, canvas, canvas) in [0, 1] (``image / 255``)."""
        return (self.image.astype(np.float32) / np.float32(255.0))[None]

    @property
    def tensor(self) -> torch.Tensor:
        """:attr:`array` as a torch float32 tensor (1, canvas, canvas); imports torch."""
        import torch

        return torch.from_numpy(self.array)


@dataclass(frozen=True)
class Preparation:
    """A dataset's picture preparation with its settings; call it on a picture.

    ``Preparation()(picture)`` prepares as MNIST was made;
    ``Preparation.from_record(model.preparation)`` as a model's dataset was.

    Attributes:
        method: a name of :data:`mnistcnn.prepare.methods.METHODS`
            (``mnist``, ``kmnist``, ``emnist``, ``fashion-mnist``).
        options: the method's settings as its record stores them (``box``,
            ``canvas``, ...; :data:`mnistcnn.prepare.records.PREPARATIONS`);
            None: the method's own record.
        invert: ``auto`` (detect dark-on-light and invert it), ``yes`` (dark
            ink / product on light: always invert), ``no`` (never).
        settings: ink-finding thresholds and geometry defaults (the record's
            ``box`` and ``canvas`` take precedence).

    Raises:
        ValueError: an unknown method (the message lists the known ones) or
            ``invert`` not one of ``auto``, ``yes``, ``no``.
    """

    method: str = "mnist"
    options: Mapping[str, Any] | None = None
    invert: InvertMode = "auto"
    settings: PreparationSettings = field(default_factory=PreparationSettings)

    def __post_init__(self) -> None:
        method_of({"method": self.method})
        if self.settings is None:  # a None passed on: the defaults
            object.__setattr__(self, "settings", PreparationSettings())
        if self.invert not in INVERT_MODES:
            raise ValueError(
                f"invert must be one of {', '.join(INVERT_MODES)}, got {self.invert!r}"
            )
        if self.options is None:
            own = {k: v for k, v in PREPARATIONS[self.method].items() if k != "method"}
            object.__setattr__(self, "options", own)
        else:
            object.__setattr__(self, "options", dict(self.options))

    @classmethod
    def from_record(
        cls,
        record: Mapping[str, Any],
        *,
        invert: InvertMode = "auto",
        settings: PreparationSettings | None = None,
    ) -> Preparation:
        """The Preparation a checkpoint's record (``{"method": ..., settings}``) describes.

        Raises:
            ValueError: the record names no known method (the message lists them).
        """
        options = {k: v for k, v in record.items() if k != "method"}
        return cls(str(record.get("method")), options, invert, settings or PreparationSettings())

    def to_record(self) -> dict[str, Any]:
        """The record a checkpoint stores: ``{"method": name, **options}`` (plain data)."""
        return {"method": self.method, **(self.options or {})}

    def replace(self, **changes: Any) -> Preparation:
        """A copy with ``changes`` (``invert``, ``settings``, ``options``)."""
        return dataclasses.replace(self, **changes)

    @property
    def steps(self) -> Method:
        """The method's steps (:class:`~mnistcnn.prepare.methods.Method`)."""
        return METHODS[self.method]

    @property
    def geometry(self) -> PreparationSettings:
        """:attr:`settings` with the record's geometry over them."""
        return geometry(self.to_record(), self.settings)

    def given(self, picture: Image.Image | np.ndarray) -> np.ndarray | None:
        """uint8 (28, 28) if ``picture`` is already in the dataset's own format, else None.

        A 28x28 picture (or array) of light ink on a dark frame (Fashion-MNIST:
        one dark side; :func:`~mnistcnn.prepare.pixels.dataset_format`), unless
        :attr:`invert` is ``yes`` (the user says it is dark ink on light paper).
        Arrays are read by :func:`~mnistcnn.prepare.pixels.array_range`'s rule.
        """
        if self.invert == "yes":
            return None
        if isinstance(picture, np.ndarray):
            return dataset_format(picture, dark_edges=self.steps.dark_edges)
        if picture.size != (28, 28):
            return None
        gray = np.round(to_grayscale(picture) * 255.0).astype(np.uint8)
        return dataset_format(gray, dark_edges=self.steps.dark_edges)

    def as_given(self, image: np.ndarray, preview: Image.Image | None = None) -> PreparedPicture:
        """The PreparedPicture of an image already in the dataset's format, used unchanged.

        ``image``: uint8 (canvas, canvas), 0 background .. 255 ink (an IDX image).
        """
        image = np.asarray(image, np.uint8)
        return PreparedPicture(image, None, bool(image.any()), None, center_of_mass(image),
                               (image.shape[1], image.shape[0]), True, None, preview)  # fmt: skip

    def find(self, gray: np.ndarray) -> InkCrop:
        """The ink-finding step alone: grey float32 (H, W) in [0, 1] -> the method's crop."""
        return self.steps.find(gray, self.invert, self.to_record(), self.geometry)

    def fit(self, crop: np.ndarray) -> np.ndarray:
        """The crop -> canvas step alone: ink float32 (h, w) in [0, 1], background 0
        -> uint8 (canvas, canvas), background 0 (e.g. each character a reader cut out)."""
        return self.steps.fit(crop, self.to_record(), self.geometry)

    def __call__(
        self, picture: Image.Image | np.ndarray, *, keep_preview: bool = False
    ) -> PreparedPicture:
        """Prepare one decoded picture (see the module docstring).

        Args:
            picture: a decoded Pillow image (any mode, size, orientation,
                transparency), or an array: (H, W), (H, W, 1), (1, H, W),
                (H, W, 3) or (H, W, 4), of a type and range
                :func:`~mnistcnn.prepare.pixels.array_range` reads.
            keep_preview: keep a small displayable copy (``PreparedPicture.preview``).

        Returns:
            :class:`PreparedPicture`.

        Raises:
            mnistcnn._io.ImageInputError: a size no digit picture has
                (:func:`mnistcnn._io.check_size`).
            ValueError: an array of another shape, type or range.
        """
        given = self.given(picture) if isinstance(picture, np.ndarray) else None
        if given is not None:
            return self.as_given(given, Image.fromarray(given, "L") if keep_preview else None)
        image = array_to_image(picture) if isinstance(picture, np.ndarray) else picture
        check_size(*image.size)
        preview = preview_copy(image) if keep_preview else None
        given = self.given(image)
        if given is not None:  # already the model's input: no preparation
            return self.as_given(given, preview)
        return self.apply(image, preview)

    def apply(self, picture: Image.Image, preview: Image.Image | None = None) -> PreparedPicture:
        """The method's two steps on any Pillow image: grey values, :meth:`find`, :meth:`fit`.

        Unlike calling the Preparation, no size is refused and a picture in
        the dataset's own format is prepared all the same (not used as given).
        ``preview`` is stored in the result as it is.
        """
        found = self.find(to_grayscale(picture))
        canvas = int((self.options or {}).get("canvas", self.settings.field))
        if found.crop is None:
            blank = np.zeros((canvas, canvas), np.uint8)
            return PreparedPicture(blank, found.inverted, False, None, None, found.size, False,
                                   None, preview)  # fmt: skip
        out = self.fit(found.crop)
        ink_found = bool(out.any()) if self.steps.empty_is_blank else True
        com = center_of_mass(out)
        return PreparedPicture(out, found.inverted, ink_found, found.box, com, found.size, False,
                               found.crop, preview)  # fmt: skip
