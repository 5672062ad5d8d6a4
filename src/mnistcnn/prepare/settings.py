"""The settings of the ink-based preparations: geometry (pixels) and ink thresholds.

One :class:`PreparationSettings` drives :func:`~mnistcnn.prepare.locate.locate_ink`
(finding the ink) and :func:`~mnistcnn.prepare.fit.fit_and_center` (the crop
-> 28x28 step). A model's preparation record (:mod:`mnistcnn.prepare.records`)
sets the geometry (``box``, ``canvas``, centring) over these defaults
(:func:`mnistcnn.prepare.methods.geometry`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from mnistcnn.prepare.clutter import ClutterSettings
from mnistcnn.prepare.ink import InkSettings


@dataclass(frozen=True)
class PreparationSettings:
    """Geometry of the preparation (pixels) and the ink thresholds.

    Attributes:
        field: output side, 28 (MNIST).
        box: side of the box the digit is fitted into, 20 (MNIST).
        center: target of the centre of mass, (row, col) = (14.0, 14.0): measured
            on MNIST's training images (see :mod:`mnistcnn.prepare.fit`).
        work_size: longest side of the working copy the ink is searched in.
        refine_below: when the ink's box is shorter than this at working
            resolution and the picture was shrunk, the search is redone on a
            crop of the full-resolution picture.
        stroke: (low, high) stroke width in px of the ``box``-sized digit that
            the fit brings the ink into; None skips it. MNIST's strokes are
            2.5 px wide (median; 5th-95th percentile 1.7-3.9 px, see
            :mod:`mnistcnn.prepare.stroke`).
        upsample: the stroke step works at ``upsample`` times the box size, so
            that erosion moves in quarter-pixel steps of the final image.
        ink: thresholds of :func:`~mnistcnn.prepare.ink.ink_map`.
        clutter: thresholds of :func:`~mnistcnn.prepare.clutter.isolate`, which
            keeps the one character among borders, lines and marks; None keeps all ink.
        centring: ``"mass"`` moves the centre of mass to ``center`` (MNIST);
            ``"box"`` puts the fitted box in the middle of the field.
    """

    field: int = 28
    box: int = 20
    center: tuple[float, float] = (14.0, 14.0)
    work_size: int = 256
    refine_below: int = 64
    stroke: tuple[float, float] | None = (2.0, 3.0)
    upsample: int = 4
    ink: InkSettings = dataclasses.field(default_factory=InkSettings)
    clutter: ClutterSettings | None = dataclasses.field(default_factory=ClutterSettings)
    centring: Literal["mass", "box"] = "mass"
