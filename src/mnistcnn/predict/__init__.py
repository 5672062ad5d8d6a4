"""Prediction on people's own images: MNIST-style preprocessing, calibrated predictions.

:func:`preprocess_image` turns a photo, scan or canvas drawing of one digit into
the 28x28 uint8 image MNIST would have made of it (see
:mod:`mnistcnn.predict.preprocess`). :class:`Predictor` loads a checkpoint and
returns a :class:`Prediction` per picture (see :mod:`mnistcnn.predict.predictor`);
:func:`expand_inputs` turns command-line arguments (files, folders, globs, ``-``,
IDX files) into its inputs. :func:`prepare_by_method` prepares a picture the way
a checkpoint's dataset made its images (the record ``TrainedModel.preparation``
names the method: :mod:`mnistcnn.predict.methods`).
"""

from mnistcnn.predict.decoding import ImageInputError, decode_image
from mnistcnn.predict.inputs import InputItem, expand_inputs
from mnistcnn.predict.methods import prepare_by_method
from mnistcnn.predict.prediction import Prediction
from mnistcnn.predict.predictor import DEFAULT_THRESHOLD, Predictor
from mnistcnn.predict.preprocess import (
    INVERT_MODES,
    PreprocessResult,
    PreprocessSettings,
    preprocess_image,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "INVERT_MODES",
    "ImageInputError",
    "InputItem",
    "Prediction",
    "Predictor",
    "PreprocessResult",
    "PreprocessSettings",
    "decode_image",
    "expand_inputs",
    "prepare_by_method",
    "preprocess_image",
]
