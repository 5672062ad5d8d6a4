"""Prediction on people's own images: calibrated verdicts from a trained model.

:class:`Predictor` loads a checkpoint and returns a :class:`Prediction` per
picture (see :mod:`mnistcnn.predict.predictor`); :func:`expand_inputs` turns
command-line arguments (files, folders, globs, ``-``, IDX files) into its
inputs. Decoding is :mod:`mnistcnn._io`'s (:func:`mnistcnn._io.decode_picture`)
and the 28x28 input is made by the model's preparation
(:class:`mnistcnn.prepare.Preparation`, ``TrainedModel.prepare``).
"""

from mnistcnn.predict.inputs import InputItem, expand_inputs
from mnistcnn.predict.prediction import Prediction
from mnistcnn.predict.predictor import DEFAULT_THRESHOLD, Predictor

__all__ = [
    "DEFAULT_THRESHOLD",
    "InputItem",
    "Prediction",
    "Predictor",
    "expand_inputs",
]
