"""Shared pieces of the benchmark scripts: data-source flags and the JSON result file."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def add_data_args(p: argparse.ArgumentParser) -> None:
    """``--data-root`` and ``--mirror`` (from $MNISTCNN_DATA, $MNISTCNN_MIRROR) and ``--json``."""
    p.add_argument(
        "--data-root",
        default=os.environ.get("MNISTCNN_DATA"),
        help="data root ($MNISTCNN_DATA or mnistcnn's default)",
    )
    p.add_argument(
        "--mirror",
        default=os.environ.get("MNISTCNN_MIRROR"),
        help="local mirror folder with the .gz files ($MNISTCNN_MIRROR)",
    )
    p.add_argument("--json", type=Path, help="also write the results here")


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    """Write ``result`` as indented JSON to ``path`` (folders made); nothing if ``path`` is None."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str))
