"""Typed, frozen configuration for training runs, and the named recipes.

No I/O here: the CLI builds a :class:`TrainConfig` from flags, library code
only reads it.

* :mod:`.settings`: :func:`setting`, how a field is declared (help text,
  whether it changes the math, its flag, choices and range), and
  :func:`check_settings`.
* :mod:`.training`: :class:`TrainConfig`, the allowed values
  (:data:`OPTIMIZERS`...), :func:`setting_flag` and :func:`changes_math`.
* :mod:`.outlier_settings`: :class:`OutlierSettings`, the outlier-exposure settings
  (a base of :class:`TrainConfig`).
* :mod:`.recipes`: :data:`RECIPES` and :func:`recipe_config`.
"""

from mnistcnn.config.recipes import RECIPES, recipe_config
from mnistcnn.config.settings import SETTING_KEYS, check_settings, setting
from mnistcnn.config.training import (
    AUGMENTATIONS,
    LOADERS,
    MAX_SEED,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULERS,
    TrainConfig,
    changes_math,
    setting_flag,
)

__all__ = [
    "AUGMENTATIONS",
    "LOADERS",
    "MAX_SEED",
    "OPTIMIZERS",
    "PRECISIONS",
    "RECIPES",
    "SCHEDULERS",
    "SETTING_KEYS",
    "TrainConfig",
    "changes_math",
    "check_settings",
    "recipe_config",
    "setting",
    "setting_flag",
]
