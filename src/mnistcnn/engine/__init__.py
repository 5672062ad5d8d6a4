"""Training: the loop, run directories, resume, distributed runs.

Checkpoints and the trained model live in :mod:`mnistcnn.artifact`; evaluation
in :mod:`mnistcnn.evaluation` (re-exported here for existing callers), with
calibration, reports and plots.
"""

from mnistcnn.artifact import Checkpoint, CheckpointError, load_checkpoint, load_model
from mnistcnn.engine.evaluate import evaluate_batches
from mnistcnn.engine.session import TrainResult, train
from mnistcnn.engine.train import History, NonFiniteLossError, fit
from mnistcnn.engine.utils import seed_everything, select_device
from mnistcnn.evaluation import Evaluation, evaluate

EvalResult = Evaluation  # the name before the evaluation package existed

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "EvalResult",
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
