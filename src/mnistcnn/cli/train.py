"""``mnistcnn train``: flags -> :func:`mnistcnn.train` -> printed lines (:mod:`.train_output`)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from mnistcnn.cli import exit_codes
from mnistcnn.cli.common import check_out, cli_message, data_options, user_errors
from mnistcnn.cli.config_options import config_options
from mnistcnn.cli.folder import prepare_and_say
from mnistcnn.cli.train_options import config_file_options, config_for, read_config_option
from mnistcnn.cli.train_options import print_config as show_config
from mnistcnn.cli.train_output import (
    epoch_line,
    report_resume_hint,
    say_report,
    say_result,
    say_start,
)
from mnistcnn.errors import SettingError


@click.command()
@config_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="One epoch of at most 10 steps: checks the whole path. Its run folder is a temporary "
    "one, removed at the end, unless --out names one to keep.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run directory (not with --resume). [default: runs/<timestamp>-<model>-<dataset>; "
    "runs/latest then points at it once its first best.pt is written, except for --dry-run]",
)
@click.option("--no-progress", is_flag=True, help="No progress bar (also off when not a terminal).")
@click.option(
    "--resume",
    type=click.Path(exists=True),
    help="Continue a stopped run (its folder or a checkpoint) exactly where it stopped, "
    "with the data root and mirror it recorded unless given; refused while another process "
    "trains it; a finished run is left untouched.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --resume: accept flags that change the math (an error without --resume).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    help="Also write a resumable last.pt every N steps inside epochs.",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    help="Train with N processes on this machine (DistributedDataParallel through torchrun: "
    "gloo on CPU, nccl with one GPU each); --batch-size stays the global batch. [1]",
)
@config_file_options
@data_options
@user_errors
def train(
    recipe: str | None,
    config_file: str | None,
    print_config: bool,
    dry_run: bool,
    nproc: int | None,
    out: str | None,
    no_progress: bool,
    resume: str | None,
    force: bool,
    checkpoint_every: int | None,
    data_root: str | None,
    mirror: str | None,
    **flags: Any,
) -> None:
    """Train a model; prints one line per epoch and where the run was written.

    \b
    Example:
      mnistcnn train                       # the tutorial: 10 epochs on MNIST
      mnistcnn train --epochs 3 --seed 1 --out runs/quick
      mnistcnn train --resume runs/quick   # after Ctrl-C, a crash or a kill
      mnistcnn train --config runs/quick/config.json --seed 2 --print-config

    \b
    Ctrl-C (or SIGTERM) stops at the next step and writes a resumable last.pt;
    a second Ctrl-C stops at once.

    \b
    Several processes or machines (see docs/distributed.md):
      mnistcnn train --nproc 2 --out runs/ddp
      torchrun --nproc-per-node 2 -m mnistcnn train --out runs/ddp
    """
    import mnistcnn
    from mnistcnn.engine.distributed import env_rank
    from mnistcnn.engine.finish import ReportInterrupted
    from mnistcnn.engine.loop import TrainingInterrupted
    from mnistcnn.engine.session import dry_run_config

    _check_flags(resume, out, force)
    file = read_config_option(config_file, resume)  # the recipe < the file < flags
    if file is not None:
        data_root, mirror = data_root or file.data_root, mirror or file.mirror
    config = _config(recipe, resume, flags, file)
    planned = dry_run_config(config) if dry_run else config  # what the run trains with
    if print_config:  # and exit
        return show_config(planned)
    main = env_rank() == 0  # under torchrun only rank 0 prints (and logs)
    if not main:
        logging.getLogger("mnistcnn").setLevel(logging.ERROR)
        logging.getLogger("mnistcnn.data.source").setLevel(logging.ERROR)
    shown: list[bool] = []  # the result lines, printed as soon as training ends

    def show(result: Any) -> None:
        say_result(result)
        shown.append(True)

    try:
        result = mnistcnn.train(
            config,
            out=out,
            data_root=data_root,
            mirror=mirror,
            progress=not no_progress and sys.stderr.isatty(),
            on_epoch_end=lambda row: click.echo(epoch_line(row)),
            on_start=lambda info: say_start(planned, info),
            resume=resume,
            force=force,
            checkpoint_every=checkpoint_every,
            dry_run=dry_run,
            nproc=nproc,
            prepare_folder=prepare_and_say if main else None,
            on_result=show,
        )
    except ReportInterrupted as exc:
        raise report_resume_hint(exc.run_dir) from None
    except TrainingInterrupted:
        if not main:  # every rank stops; rank 0 alone says so, with the resume line
            sys.exit(exit_codes.INTERRUPTED)
        raise
    if result.is_main:
        if not shown:  # a complete run resumed, or workers of --nproc that trained it
            say_result(result)
        say_report(result)
        if dry_run and out is None and resume is None:
            click.echo("dry run: its temporary run folder was removed (--out DIR keeps one)")


def _check_flags(resume: str | None, out: str | None, force: bool) -> None:
    """Refuse flags that would otherwise be ignored or misread (exit status 2)."""
    from mnistcnn.engine.resume import check_resume_out

    if force and not resume:
        raise click.UsageError(
            "--force only applies with --resume (it accepts a resume whose flags change "
            "the math); a new run never overwrites an existing folder, so leave it out"
        )
    if resume and out:
        try:
            check_resume_out(resume, out)
        except SettingError as exc:
            raise click.UsageError(cli_message(exc)) from None
    check_out(out)


def _config(recipe: str | None, resume: str | None, flags: dict[str, Any], file: Any) -> Any:
    """The run's TrainConfig: the resumed run's with ``flags`` applied, or the recipe's
    with the ``--config`` file's settings, then ``flags``, applied.

    Raises:
        SettingError: an invalid setting, or an unknown model (listing the valid ones).
    """
    from mnistcnn.engine.resume import resume_config
    from mnistcnn.models import list_models

    if resume:
        config = resume_config(resume, **{**flags, "recipe": recipe})
    else:
        config = config_for(recipe, file, flags)
    if config.model not in list_models():  # said as a dataset's is: "... is unknown"
        raise SettingError(
            f"model {config.model!r} is unknown; valid models: {', '.join(list_models())}",
            setting="model",
        )
    return config
