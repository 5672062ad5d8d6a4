"""Run ``python -m mnistcnn ARGS`` and record which modules are loaded when a given line is printed.

Usage (as a script, in a subprocess)::

    python tests/import_probe.py OUT.json PREFIX -- train --recipe fast ...

Every ``click.echo`` of a text starting with ``PREFIX`` writes the sorted names of the
modules then in ``sys.modules`` to ``OUT.json`` (the first such line only); at exit,
if no line matched, ``OUT.json`` holds the modules loaded at exit under ``"exit"``.
The CLI is not changed: ``click.echo`` is looked up on the module at each call.
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
from typing import Any


def main() -> None:
    out, prefix = sys.argv[1], sys.argv[2]
    args = sys.argv[sys.argv.index("--") + 1 :]
    import click

    seen: dict[str, list[str]] = {}
    echo = click.echo

    def probe(message: Any = None, *a: Any, **k: Any) -> None:
        if "at_line" not in seen and isinstance(message, str) and message.startswith(prefix):
            seen["at_line"] = sorted(sys.modules)
        echo(message, *a, **k)

    def write() -> None:
        seen["exit"] = sorted(sys.modules)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(seen, f)

    click.echo = probe  # type: ignore[assignment]
    atexit.register(write)
    sys.argv = ["mnistcnn", *args]
    runpy.run_module("mnistcnn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
