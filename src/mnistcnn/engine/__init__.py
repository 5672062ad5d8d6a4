"""Training loop, evaluation and checkpoints."""

from mnistcnn.engine.checkpoint import Checkpoint, CheckpointError, load_checkpoint, load_model
from mnistcnn.engine.evaluate import EvalResult, evaluate_batches
from mnistcnn.engine.session import TrainResult, evaluate, train
from mnistcnn.engine.train import History, NonFiniteLossError, fit
from mnistcnn.engine.utils import seed_everything, select_device

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "EvalResult",
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
