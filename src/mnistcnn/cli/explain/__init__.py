"""``mnistcnn explain conv|model|activations|invariance``: the arithmetic behind
convolutions and layer shapes, what a trained CNN computes, and how invariant it is.

``conv`` and ``model`` (:mod:`.arithmetic`) need no trained model;
``activations`` and ``invariance`` (:mod:`.trained`) take a checkpoint."""

from __future__ import annotations

import click

from mnistcnn.cli.explain.arithmetic import conv, model
from mnistcnn.cli.explain.trained import activations, invariance


@click.group()
def explain() -> None:
    """Show the arithmetic behind a convolution or a model's layer shapes,
    what a trained CNN computes for an image, and how invariant it is."""


for _command in (conv, model, activations, invariance):
    explain.add_command(_command)
