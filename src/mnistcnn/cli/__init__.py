"""The ``mnistcnn`` command line: thin click commands over library functions.

Each sub-module defines one command or command group; this module assembles them.
User errors (bad flags, bad files) exit with status 2 or 1 and a one-line message,
never a traceback; every status is in :mod:`mnistcnn.cli.exit_codes` (and
docs/cli.md), and every command's ``--help`` ends with them.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
from typing import Any

import click

from mnistcnn import __version__
from mnistcnn.cli import exit_codes

#: ``GOMP_SPINCOUNT`` the command line starts torch with, unless the environment sets it.
OPENMP_SPIN_COUNT = 10_000


class _Main(click.Group):
    """The top-level group: Ctrl-C anywhere in a command is ``interrupted``, exit status 130.

    Each command's own error handling (:func:`mnistcnn.cli.common.user_errors`)
    says the same once it runs; this catches a Ctrl-C that comes earlier, while
    the command's libraries (torch) are still being imported, which click would
    otherwise report as ``Aborted!`` with exit status 1.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line, output never failing on characters the console cannot show.

        See :func:`mnistcnn.cli.common.tolerant_std_streams`: on a console
        whose encoding cannot write every character (cp1252, ASCII), those
        characters print as ``?`` instead of stopping the command.

        OpenMP threads (torch's intra-op threads, GNU libgomp) busy-wait for
        :data:`OPENMP_SPIN_COUNT` iterations after each operator before they sleep,
        unless ``GOMP_SPINCOUNT`` is set already (libgomp's default: 300,000). With
        the default, a 2-core machine where anything else takes a core turns each
        operator's end into a wait for a thread that is not running: the ``fast``
        recipe's epoch took 19-36 s instead of 3-5 s beside another process, 3.2-5.0 s
        with 10,000 (docs/training.md, "Threads"), and no slower alone.

        At exit, after every other exit handler (they run last-registered first),
        the objects alive then are moved out of the garbage collector's reach
        (:func:`gc.freeze`): the interpreter's shutdown otherwise runs full
        collections over the hundreds of thousands of objects torch creates at
        import, about 0.5 s of every command on a small CPU (``python -c "import
        torch"`` spends 0.7 s after its last line; 0.2 s with the freeze). Objects
        are still freed as the modules are torn down; files the commands write are
        closed and renamed into place before the command returns.
        """
        from mnistcnn.cli.common import tolerant_std_streams

        tolerant_std_streams()
        os.environ.setdefault("GOMP_SPINCOUNT", str(OPENMP_SPIN_COUNT))  # before torch loads
        atexit.register(gc.freeze)
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(exit_codes.INTERRUPTED)


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=exit_codes.EPILOG,
)
@click.version_option(__version__, prog_name="mnistcnn")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Train, evaluate, explain and serve CNNs for MNIST-style 28x28 images."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _say_data_sources()


def _say_data_sources() -> None:
    """Show the data layer's one line per dataset it obtained (where from), as ``data: ...``."""
    source = logging.getLogger("mnistcnn.data.source")
    for old in [h for h in source.handlers if getattr(h, "mnistcnn_cli", False)]:
        source.removeHandler(old)
    handler = logging.StreamHandler()  # the current stderr
    handler.setFormatter(logging.Formatter("data: %(message)s"))
    handler.mnistcnn_cli = True  # type: ignore[attr-defined]
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    source.propagate = False


def _register() -> None:
    from mnistcnn.cli import data as data_cmd
    from mnistcnn.cli import evaluate as evaluate_cmd
    from mnistcnn.cli import explain as explain_cmd
    from mnistcnn.cli import export as export_cmd
    from mnistcnn.cli import lr_find as lr_find_cmd
    from mnistcnn.cli import predict as predict_cmd
    from mnistcnn.cli import read as read_cmd
    from mnistcnn.cli import runs as runs_cmd
    from mnistcnn.cli import serve as serve_cmd
    from mnistcnn.cli import train as train_cmd
    from mnistcnn.cli import weights as weights_cmd

    main.add_command(train_cmd.train)
    main.add_command(evaluate_cmd.evaluate)
    main.add_command(evaluate_cmd.models)
    main.add_command(data_cmd.data)
    main.add_command(explain_cmd.explain)
    main.add_command(predict_cmd.predict)
    main.add_command(predict_cmd.calibrate)
    main.add_command(read_cmd.read)
    main.add_command(serve_cmd.serve)
    main.add_command(lr_find_cmd.lr_find)
    main.add_command(runs_cmd.runs)
    main.add_command(weights_cmd.weights)
    main.add_command(export_cmd.export)
    _add_epilog(main)


def _add_epilog(group: click.Group) -> None:
    """End every command's ``--help`` with the exit statuses (after its own epilog)."""
    for cmd in group.commands.values():
        if exit_codes.EPILOG not in (cmd.epilog or ""):
            cmd.epilog = f"{cmd.epilog}\n\n{exit_codes.EPILOG}" if cmd.epilog else exit_codes.EPILOG
        if isinstance(cmd, click.Group):
            _add_epilog(cmd)


_register()
