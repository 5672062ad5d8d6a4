"""How each dataset turned its source pictures into 28x28 images: the preparation records.

A trained model must see a user's picture prepared the way its dataset's images
were, so each :class:`~mnistcnn.data.DatasetSpec` names a preparation method and
the checkpoint records it (``TrainedModel.preparation``, a record: the method's
name and its settings). This module holds the records as data (method name ->
settings); :mod:`mnistcnn.prepare.methods` holds the steps that carry them out
and :class:`mnistcnn.prepare.Preparation` runs a record. Sources:

* ``mnist`` (MNIST, QMNIST): LeCun, Bottou, Bengio, Haffner 1998, section III-A,
  and http://yann.lecun.com/exdb/mnist/: the digit "size normalized to fit in a
  20x20 pixel box while preserving their aspect ratio", anti-aliased, "centered
  in a 28x28 image by computing the center of mass of the pixels". QMNIST
  (Yadav & Bottou 2019) re-made exactly that process.
* ``fashion-mnist``: Xiao, Rasul, Vollgraf 2017, "Fashion-MNIST: a Novel Image
  Dataset for Benchmarking Machine Learning Algorithms" (arXiv:1708.07747),
  section 2, the conversion of each product photo: trim the edges whose colour
  is within 5 % of the maximum intensity of the corner pixels' colour; resize
  the longest edge to 28 by subsampling; sharpen with a Gaussian operator of
  radius and standard deviation 1.0; extend the shortest edge to 28 and put the
  image at the centre of the canvas; negate; 8-bit grayscale.
* ``emnist`` (the six EMNIST splits): Cohen, Afshar, Tapson, van Schaik 2017,
  "EMNIST: an extension of MNIST to handwritten letters" (arXiv:1702.05373),
  Fig. 1: the 128x128 binary NIST image blurred by a Gaussian of sigma 1 px,
  cropped to the character's region of interest, centred in a square frame
  with its aspect ratio kept and a 2-pixel border, down-sampled to 28x28 with
  bi-cubic interpolation, intensities scaled to 0..255.
* ``kmnist``: Clanuwat et al. 2018, "Deep Learning for Classical Japanese
  Literature" (arXiv:1812.01718) and https://github.com/rois-codh/kmnist
  describe Kuzushiji-MNIST as "a drop-in replacement for the MNIST dataset
  (28x28 grayscale)" made "in a format similar to the MNIST dataset", without
  giving the box size or the centring. The record used here is an assumption,
  not a measurement (KMNIST's files are not part of this project's test data):
  the character's box, aspect ratio kept, scaled to fill the 28x28 field and
  centred by its box, as in the published example images the characters
  reach the edges of the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

#: method name -> its settings (the record a checkpoint stores, ``method`` included).
#: ``box``: side in px of the square the picture's content is fitted into;
#: ``canvas``: the output side; ``center``: ``"mass"`` (the intensity centre of mass
#: goes to the canvas centre) or ``"box"`` (the content's bounding box is centred).
PREPARATIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "mnist": MappingProxyType({"method": "mnist", "box": 20, "canvas": 28}),
        "fashion-mnist": MappingProxyType(
            {
                "method": "fashion-mnist",
                "box": 28,
                "canvas": 28,
                "center": "box",
                "trim_tolerance": 0.05,
                "sharpen_sigma": 1.0,
            }
        ),
        "emnist": MappingProxyType(
            {
                "method": "emnist",
                "box": 28,
                "canvas": 28,
                "center": "box",
                "blur_sigma": 1.0,
                "roi_size": 128,
                "border": 2,
            }
        ),
        "kmnist": MappingProxyType({"method": "kmnist", "box": 28, "canvas": 28, "center": "box"}),
    }
)


#: MNIST's record: what pictures get when no model says otherwise, and what
#: checkpoints written before records existed are read with.
MNIST_RECORD: Mapping[str, Any] = PREPARATIONS["mnist"]


def preparation_record(method: str) -> dict[str, Any]:
    """A fresh copy of the record of preparation ``method`` (what a checkpoint stores).

    Raises:
        ValueError: unknown ``method``; the message lists the known ones.
    """
    if method not in PREPARATIONS:
        raise ValueError(
            f"unknown picture preparation {method!r}; known: {', '.join(sorted(PREPARATIONS))}"
        )
    return dict(PREPARATIONS[method])


def preparation_method(dataset: str) -> str:
    """The preparation method of registered dataset ``dataset`` (a name in :data:`PREPARATIONS`).

    MNIST and QMNIST (which re-made MNIST's process): ``"mnist"``; Fashion-MNIST:
    ``"fashion-mnist"``; KMNIST: ``"kmnist"``; the EMNIST splits (``emnist-*``):
    ``"emnist"``. Any other name gets ``"mnist"``. Each
    :class:`~mnistcnn.data.DatasetSpec` is built with it (``DatasetSpec.preparation``).
    """
    if dataset.startswith("emnist-"):
        return "emnist"
    return dataset if dataset in ("fashion-mnist", "kmnist") else "mnist"
