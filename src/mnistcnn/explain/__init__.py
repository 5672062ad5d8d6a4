"""Explanations with the numbers written out: the worked convolution and model summaries.

Names are imported lazily (PEP 562) so that ``import mnistcnn.explain.conv_inputs``
(used by the CLI to list filters) does not load matplotlib or torchinfo.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CROSS_CORRELATION_NOTE": "conv_arithmetic",
    "FILTERS": "conv_inputs",
    "TUTORIAL_INPUT": "conv_inputs",
    "TUTORIAL_KERNEL": "conv_inputs",
    "AxisArithmetic": "conv_arithmetic",
    "ConvInputError": "conv_inputs",
    "ConvWorked": "conv_arithmetic",
    "WorkedElement": "conv_arithmetic",
    "list_filters": "conv_inputs",
    "load_image_matrix": "conv_pictures",
    "named_filter": "conv_inputs",
    "parse_matrix": "conv_inputs",
    "worked_convolution": "conv_arithmetic",
    "convolution_figure": "conv_pictures",
    "LayerRow": "model_summary",
    "ModelSummary": "model_summary",
    "load_model_for_summary": "model_summary",
    "summarize_model": "model_summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
