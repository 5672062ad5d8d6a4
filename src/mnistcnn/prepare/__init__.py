"""Picture preparation: decoded pixels -> the model's 28x28 input, every step once.

A picture's way through mnistcnn: :mod:`mnistcnn._io` decodes it, this package
makes the 28x28 input, the model answers, :mod:`mnistcnn.predict` turns the
logits into a verdict. :class:`Preparation` (a dataset's method and its
settings, stored in a checkpoint as a record) is called on a picture and gives
a :class:`PreparedPicture`; ``TrainedModel.prepare(picture)`` does the same
with the model's own preparation.

The modules, in the order a picture meets them:

=====================  ======================================================
:mod:`.pixels`         any Pillow image or array -> grey float32 (H, W) in
                       [0, 1]; the datasets' own format; preview copies
:mod:`.ink`            page -> ink strength map: background, polarity,
                       contrast, hysteresis (background exactly 0)
:mod:`.clutter`        ink map -> the one character among lines, frames, marks
:mod:`.locate`         the ink-finding step: grey page -> the character's
                       cleaned ink, cropped (:func:`locate_ink`); the whole
                       cleaned page (:func:`ink_page`); Fashion-MNIST's trim
:mod:`.stroke`         stroke width: measured, brought into MNIST's range
:mod:`.fit`            the crop -> 28x28 step: fitted into the box, centred
:mod:`.settings`       :class:`PreparationSettings`: geometry and thresholds
:mod:`.records`        each dataset's record (method name -> settings)
:mod:`.methods`        each method's two steps and its dataset-format rule
:mod:`.preparation`    :class:`Preparation` and :class:`PreparedPicture`
:mod:`.segment`        a written number's ink -> lines, digits, separators
:mod:`.split`          touching digits cut apart, a classifier choosing the cuts
=====================  ======================================================

A reader of several digits takes the cleaned page (:func:`ink_page`), finds
its characters (:mod:`.segment`, :mod:`.split`) and gives each character's
crop to the crop -> 28x28 step (:meth:`Preparation.fit`).

Nothing here imports torch, torchvision or matplotlib (NumPy, SciPy,
scikit-image and Pillow only): ``PreparedPicture.tensor`` imports torch when asked.
"""

from mnistcnn.prepare.clutter import ClutterSettings, isolate
from mnistcnn.prepare.fit import Box, bbox, center_of_mass, fit_and_center
from mnistcnn.prepare.ink import INVERT_MODES, InkMap, InkSettings, InvertMode, ink_map
from mnistcnn.prepare.locate import InkCrop, InkPage, ink_page, locate_ink
from mnistcnn.prepare.methods import METHODS, Method, method_of
from mnistcnn.prepare.pixels import (
    array_range,
    array_to_image,
    dataset_format,
    preview_copy,
    to_grayscale,
    to_unit,
)
from mnistcnn.prepare.preparation import Preparation, PreparedPicture
from mnistcnn.prepare.records import MNIST_RECORD, PREPARATIONS, preparation_record
from mnistcnn.prepare.settings import PreparationSettings

__all__ = [
    "INVERT_MODES",
    "METHODS",
    "MNIST_RECORD",
    "PREPARATIONS",
    "Box",
    "ClutterSettings",
    "InkCrop",
    "InkMap",
    "InkPage",
    "InkSettings",
    "InvertMode",
    "Method",
    "Preparation",
    "PreparationSettings",
    "PreparedPicture",
    "array_range",
    "array_to_image",
    "bbox",
    "center_of_mass",
    "dataset_format",
    "fit_and_center",
    "ink_map",
    "ink_page",
    "isolate",
    "locate_ink",
    "method_of",
    "preparation_record",
    "preview_copy",
    "to_grayscale",
    "to_unit",
]
