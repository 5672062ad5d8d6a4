"""Small output faults of the command line (issue 13.14)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from mnistcnn.cli import main


def test_models_does_not_repeat_the_parameter_count() -> None:
    r = CliRunner().invoke(main, ["models"])
    assert r.exit_code == 0, r.output
    for line in r.output.splitlines():
        name, count, description = line.split(maxsplit=2)
        assert count.replace(",", "").isdigit(), line
        assert count not in description and not re.search(r"\bparams\b", description), line
    rows = json.loads(CliRunner().invoke(main, ["models", "--json"]).output)
    assert not any("params" in r["description"] for r in rows)


def test_data_show_past_the_end_says_how_many_were_shown(mnist_root: Path) -> None:
    args = ["data", "show", "mnist", "--index", "59999", "--count", "3"]
    r = CliRunner().invoke(main, [*args, "--data-root", str(mnist_root)])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["train[59999]: label 8 (8 - eight)"]
    assert (
        "note: showed 1 sample of the 3 asked for: the train split has 60000 images "
        "(indices 0..59999)" in r.stderr
    )
    full = CliRunner().invoke(main, [*args[:4], "59990", "--data-root", str(mnist_root)])
    assert "note" not in full.output  # all three shown: nothing to say


def test_data_show_tensor_fits_the_terminal(mnist_root: Path) -> None:
    args = ["data", "show", "mnist", "--index", "12", "--tensor", "--data-root", str(mnist_root)]
    for columns in (80, 120):
        r = CliRunner().invoke(main, args, env={"COLUMNS": str(columns)})
        assert r.exit_code == 0, r.output
        widest = max(len(line) for line in r.stdout.splitlines())
        assert widest <= columns, (columns, widest)
        assert "tensor([[[" in r.stdout
