"""Training: the job (:func:`train`, engine/session.py), the epoch loop (:func:`fit`,
engine/loop.py), run directories, resume, distributed runs.

Checkpoints and the trained model live in :mod:`mnistcnn.artifact`; evaluation
in :mod:`mnistcnn.evaluation` (re-exported here for existing callers), with
calibration, reports and plots.
"""

from mnistcnn.artifact import Checkpoint, CheckpointError, load_checkpoint, load_model
from mnistcnn.engine.evaluate import evaluate_batches
from mnistcnn.engine.loop import History, NonFiniteLossError, fit
from mnistcnn.engine.session import TrainResult, train
from mnistcnn.engine.utils import seed_everything, select_device
from mnistcnn.evaluation import Evaluation, evaluate

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Evaluation",
    "History",
    "NonFiniteLossError",
    "TrainResult",
    "evaluate",
    "evaluate_batches",
    "fit",
    "load_checkpoint",
    "load_model",
    "seed_everything",
    "select_device",
    "train",
]
