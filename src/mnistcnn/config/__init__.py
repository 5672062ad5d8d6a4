"""Typed, frozen configuration for training runs, and the named recipes.

No I/O here: the CLI builds a :class:`TrainConfig` from flags, library code
only reads it.

* :mod:`.settings`: :func:`setting`, how a field is declared (help text,
  whether it changes the math, its flag, choices and range),
  :func:`check_settings`, and :func:`check_value`, the one check of a value
  against its declaration (Python calls, flags and config files alike).
* :mod:`.training`: :class:`TrainConfig`, the allowed values
  (:data:`OPTIMIZERS`, :data:`PRECISIONS`, :data:`AUGMENTATIONS`,
  :data:`OUTLIER_KINDS`...), :func:`setting_flag` and :func:`changes_math`.
* :mod:`.recipes`: :data:`RECIPES` and :func:`recipe_config`.
"""

from mnistcnn.config.recipes import RECIPES, recipe_config
from mnistcnn.config.settings import SETTING_KEYS, check_settings, check_value, setting
from mnistcnn.config.training import (
    AUGMENTATIONS,
    LOADERS,
    MAX_SEED,
    OPTIMIZERS,
    OUTLIER_KINDS,
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
    "OUTLIER_KINDS",
    "PRECISIONS",
    "RECIPES",
    "SCHEDULERS",
    "SETTING_KEYS",
    "TrainConfig",
    "changes_math",
    "check_settings",
    "check_value",
    "recipe_config",
    "setting",
    "setting_flag",
]
