"""Prediction on people's own images: MNIST-style preprocessing of any picture.

:func:`preprocess_image` turns a photo, scan or canvas drawing of one digit into
the 28x28 uint8 image MNIST would have made of it (see
:mod:`mnistcnn.predict.preprocess`).
"""

from mnistcnn.predict.preprocess import (
    INVERT_MODES,
    PreprocessResult,
    PreprocessSettings,
    preprocess_image,
)

__all__ = ["INVERT_MODES", "PreprocessResult", "PreprocessSettings", "preprocess_image"]
