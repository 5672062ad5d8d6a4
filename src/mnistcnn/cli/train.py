"""``mnistcnn train``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mnistcnn._text import plural
from mnistcnn.cli import exit_codes
from mnistcnn.cli.common import (
    cli_command,
    cli_message,
    data_options,
    pct,
    resume_args,
    user_errors,
)
from mnistcnn.cli.config_options import config_options
from mnistcnn.cli.folder import prepare_pictures
from mnistcnn.cli.train_options import check_hooks, config_file_options, read_config_option
from mnistcnn.cli.train_options import print_config as show_config
from mnistcnn.errors import SettingError

F = TypeVar("F", bound=Callable[..., Any])


def _epoch_line(row: dict[str, Any]) -> str:
    parts = [
        f"epoch {row['epoch']:>3}",
        f"train_loss {row['train_loss']:.4f}",
        f"train_acc {pct(row['train_accuracy'])}",
    ]
    if "val_accuracy" in row:
        parts.append(f"val_acc {pct(row['val_accuracy'])}")
    if "test_accuracy" in row:  # a picture folder (folder:PATH) has no test split
        parts += [f"test_loss {row['test_loss']:.4f}", f"test_acc {pct(row['test_accuracy'])}"]
    parts += [
        f"lr {row['lr']:.3g}",
        f"{row['train_seconds'] + row['eval_seconds']:.1f}s",
    ]
    return "  ".join(parts)


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
    _check_flag_combinations(resume, out, force)
    _check_out(out)
    file = read_config_option(config_file, resume)  # the recipe < the file < flags
    if file is not None:
        data_root, mirror = data_root or file.data_root, mirror or file.mirror
    if dry_run:
        flags.update(epochs=1, max_steps=flags.get("max_steps") or 10)
    if print_config:  # and exit
        return show_config(_config_from_flags(recipe, resume, flags, file))
    settings: dict[str, Any] = dict(recipe=recipe, dry_run=dry_run, nproc=nproc, out=out)
    settings.update(resume=resume)
    settings.update(no_progress=no_progress, force=force, checkpoint_every=checkpoint_every)
    settings.update(data_root=data_root, mirror=mirror, file=file)
    if not (dry_run and out is None and resume is None):
        _train(settings, flags)
        return
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix="mnistcnn-dry-run-")  # a check keeps nothing unless asked
    from mnistcnn.engine.distributed import env_rank

    try:
        _train({**settings, "out": str(Path(scratch) / "run")}, flags)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if env_rank() == 0 and not (nproc or 1) > 1:  # once: the process that trained and printed
            click.echo("dry run: its temporary run folder was removed (--out DIR keeps one)")


def _train(settings: dict[str, Any], flags: dict[str, Any]) -> None:
    """:func:`train`'s body once its run folder is settled (a dry run's is a temporary one)."""
    recipe, dry_run, nproc, out = (settings[k] for k in ("recipe", "dry_run", "nproc", "out"))
    resume, force, no_progress = settings["resume"], settings["force"], settings["no_progress"]
    checkpoint_every = settings["checkpoint_every"]
    data_root, mirror = settings["data_root"], settings["mirror"]
    from mnistcnn.engine import train as train_run
    from mnistcnn.engine.distributed import env_rank, launch_local
    from mnistcnn.engine.loop import TrainingInterrupted

    if nproc is not None and nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise click.UsageError("--nproc launches torchrun itself; leave it out under torchrun")
        # everything that can be checked before the workers start is checked once, here
        config = _config_from_flags(recipe, resume, flags, settings["file"])
        check_hooks(config)  # e.g. tensorboard missing: said once, not by each worker
        prepare_pictures(config, data_root, resume)
        if resume and _resume_is_complete(resume, config, force, data_root, mirror):
            return
        _check_run_dir_free(resume, out)
        sys.exit(launch_local(nproc, _without_nproc(sys.argv[1:])))
    main = env_rank() == 0  # under torchrun only rank 0 prints (and logs)
    if not main:
        logging.getLogger("mnistcnn").setLevel(logging.ERROR)
        logging.getLogger("mnistcnn.data.source").setLevel(logging.ERROR)
    config = _config_from_flags(recipe, resume, flags, settings["file"])
    if main:
        prepare_pictures(config, data_root, resume)
    progress = not no_progress and sys.stderr.isatty()
    from mnistcnn.engine.finish import ReportInterrupted

    try:
        result = train_run(
            config,
            out=out,
            data_root=data_root,
            mirror=mirror,
            progress=progress,
            on_epoch_end=lambda row: click.echo(_epoch_line(row)),
            resume=resume,
            force=force,
            checkpoint_every=checkpoint_every,
            link_latest=not dry_run,
            on_start=lambda info: _say_start(config, info),
        )
    except ReportInterrupted as exc:
        raise _report_resume_hint(exc.run_dir) from None
    except TrainingInterrupted:
        if not main:  # every rank stops; rank 0 alone says so, with the resume line
            sys.exit(exit_codes.INTERRUPTED)
        raise
    if not result.is_main:
        return
    if result.already_complete:
        history = result.history
        _say_complete(result.run_dir, history.rows, history.steps, config, result.report)
        return
    last = result.history.last
    capped = config.max_steps is not None and result.history.steps >= config.max_steps
    cap = f" (stopped at --max-steps {config.max_steps})" if capped else ""
    if result.history.stopped_early:
        cap = (
            f" (stopped early: the validation loss did not improve for "
            f"{plural(config.early_stopping, 'epoch')})"
        )
    split = "test" if "test_accuracy" in last else "val"  # folder:PATH: no test split
    click.echo(
        f"final {split.replace('val', 'validation')} accuracy "
        f"{pct(last[split + '_accuracy'])} ({config.precision}) after "
        f"{plural(last['epoch'], 'epoch')}{cap} on {result.device}"
    )
    click.echo(_best_line(result.history))
    click.echo(f"run written to {result.run_dir}")
    click.echo(f"report written to {result.report}")
    if result.diverged:
        click.echo(f"warning: {result.diverged} with --lr", err=True)


def _report_resume_hint(run: Path) -> Exception:
    """The CLI's words for a stop while the report was written (exit 130 via ``user_errors``)."""
    from mnistcnn.engine.loop import TrainingInterrupted

    return TrainingInterrupted(
        "stopped while writing the report; training is complete; to write its report: "
        + cli_command(resume_args(run)),
        None,
    )


def _check_out(out: str | None) -> None:
    """Refuse an ``--out`` that is empty or names something other than a folder (exit status 2).

    An empty ``--out ""`` would otherwise fall back to the default folder silently.
    """
    if out is None:
        return
    if not out.strip():
        raise click.BadParameter("an empty path; give a folder", param_hint="'--out'")
    if Path(out).exists() and not Path(out).is_dir():
        raise click.BadParameter(f"{out} exists and is not a directory", param_hint="'--out'")
    if Path(out).name == "latest" and Path(out).parent.resolve() == Path("runs").resolve():
        raise click.BadParameter(
            "runs/latest is the link to the newest run; give the run another name",
            param_hint="'--out'",
        )


def _check_flag_combinations(resume: str | None, out: str | None, force: bool) -> None:
    """Refuse flags that would otherwise be ignored (click.UsageError: exit status 2)."""
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


def _config_from_flags(
    recipe: str | None, resume: str | None, flags: dict[str, Any], file: Any = None
) -> Any:
    """The run's TrainConfig: the resumed run's with ``flags`` applied, or the recipe's
    with the ``--config`` file's settings, then ``flags``, applied.

    Raises:
        SettingError: an invalid setting, or an unknown model (listing the valid ones).
    """
    from mnistcnn.cli.train_options import config_for
    from mnistcnn.engine.resume import resume_config
    from mnistcnn.models import list_models

    if resume:
        if recipe is not None:
            flags["recipe"] = recipe
        config = resume_config(resume, **flags)
    else:
        config = config_for(recipe, file, flags)
    if config.model not in list_models():
        raise SettingError(
            f"model {config.model!r} is unknown; valid models: {', '.join(list_models())}",
            setting="model",
        )
    return config


def _resume_is_complete(
    resume: str, config: Any, force: bool, data_root: str | None, mirror: str | None
) -> bool:
    """True if the run ``resume`` names has nothing left to train (then finished off here)."""
    from mnistcnn.engine.finish import ReportInterrupted, complete_run_report
    from mnistcnn.engine.resume import checked_resume, recorded_data_source, run_is_complete

    ckpt = checked_resume(resume, config, force)
    if not run_is_complete(ckpt, config):
        return False
    run_dir = ckpt.path.parent
    root, mirror_used = recorded_data_source(run_dir, data_root, mirror)
    try:
        report = complete_run_report(run_dir, ckpt.history, data_root=root, mirror=mirror_used)
    except ReportInterrupted as exc:
        raise _report_resume_hint(exc.run_dir) from None
    _say_complete(run_dir, ckpt.history, ckpt.step, config, report)
    return True


def _best_line(history: Any) -> str:
    """Which epoch best.pt holds, its figure, and how it was chosen (the report shows best.pt)."""
    rows = history.rows
    by_val = any("val_accuracy" in r for r in rows)
    best = next((r for r in rows if r["epoch"] == history.best_epoch), rows[-1])
    if by_val and "test_accuracy" not in best:
        return (
            f"best.pt: epoch {best['epoch']}, validation accuracy {pct(best['val_accuracy'])} "
            "(chosen on the validation split; a picture folder has no test split)"
        )
    if by_val:
        return (
            f"best.pt: epoch {best['epoch']}, validation accuracy {pct(best['val_accuracy'])}, "
            f"test accuracy {pct(best['test_accuracy'])} (chosen on the validation split)"
        )
    return (
        f"best.pt: epoch {best['epoch']}, test accuracy {pct(best['test_accuracy'])} (chosen "
        "on the test split, so optimistic; --val-fraction 0.1 chooses on held-out images)"
    )


def _say_start(config: Any, info: Any) -> None:
    """The run's header, once every check has passed; and where a resumed run continues."""
    steps = f" (at most {config.max_steps} steps)" if config.max_steps is not None else ""
    click.echo(
        f"recipe {config.recipe}: {config.model} on {config.dataset}, "
        f"{plural(config.epochs, 'epoch')}{steps}, batch {config.batch_size}, "
        f"{config.optimizer} lr {config.lr:g}"
    )
    if info.resumed:
        click.echo(
            f"resuming {info.run_dir} at epoch {info.epoch}, step {info.step} "
            f"(batch {info.batch} of {info.batches_per_epoch} done in this epoch)"
        )


def _say_complete(
    run_dir: Path, rows: list[dict[str, Any]], steps: int, config: Any, report: Path | None
) -> None:
    """What a resume of an already complete run did: nothing, or rebuilt its missing report."""
    if report is None:
        click.echo(_complete_message(run_dir, rows, config, steps))
        return
    done = plural(int(rows[-1]["epoch"]), "epoch") if rows else "all its epochs"
    click.echo(
        f"{run_dir}: the run is already complete ({done} of {config.epochs}), but its report "
        "is missing or incomplete (stopped while it was written?); writing it now, no other "
        "file changes"
    )
    click.echo(f"report written to {report}")


def _complete_message(
    run_dir: Path, rows: list[dict[str, Any]], config: Any, steps: int | None = None
) -> str:
    done = plural(int(rows[-1]["epoch"]), "epoch") if rows else "all its epochs"
    if config.max_steps is not None and steps is not None and steps >= config.max_steps:
        return (
            f"{run_dir}: the run stopped at --max-steps {config.max_steps} ({done} of "
            f"{config.epochs}, {plural(steps, 'step')}); nothing to do, no file changed "
            "(pass a larger --max-steps to train on)"
        )
    return (
        f"{run_dir}: the run is already complete ({done} of {config.epochs}); nothing to do, "
        "no file changed (pass a larger --epochs to train on)"
    )


def _check_run_dir_free(resume: str | None, out: str | None) -> None:
    """Before starting workers: the run folder is usable (new and empty, or not being trained).

    Raises:
        RunDirError: ``out`` is not empty, or another process trains into the resumed run.
    """
    from mnistcnn.engine.resume import resume_checkpoint_path
    from mnistcnn.engine.run_dir import RunLock, ensure_new_run_dir

    if resume:
        with RunLock(resume_checkpoint_path(resume).parent):
            pass
    elif out:
        ensure_new_run_dir(Path(out))


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` with ``--nproc N`` / ``--nproc=N`` removed (the workers' command line)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
