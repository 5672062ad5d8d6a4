"""What ``mnistcnn train`` prints: the header, one line per epoch, the result, the advice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mnistcnn._text import plural
from mnistcnn.cli.common import cli_command, pct, resume_args


def epoch_line(row: dict[str, Any]) -> str:
    """One epoch's metrics row (``metrics.csv``) as one line."""
    parts = [
        f"epoch {row['epoch']:>3}",
        f"train_loss {row['train_loss']:.4f}",
        f"train_acc {pct(row['train_accuracy'])}",
    ]
    if "val_accuracy" in row:
        parts.append(f"val_acc {pct(row['val_accuracy'])}")
    if "test_accuracy" in row:  # a picture folder (folder:PATH) has no test split
        parts += [f"test_loss {row['test_loss']:.4f}", f"test_acc {pct(row['test_accuracy'])}"]
    parts += [f"lr {row['lr']:.3g}", f"{row['train_seconds'] + row['eval_seconds']:.1f}s"]
    return "  ".join(parts)


def say_start(config: Any, info: Any) -> None:
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


def say_result(result: Any) -> None:
    """A finished run (:class:`~mnistcnn.engine.session.TrainResult`): its final figure,
    best.pt, where it was written; or what a resume of an already complete run did."""
    config, history = result.config, result.history
    if result.already_complete:
        _say_complete(result.run_dir, history.rows, history.steps, config, result.report)
        return
    last = history.last
    capped = config.max_steps is not None and history.steps >= config.max_steps
    cap = f" (stopped at --max-steps {config.max_steps})" if capped else ""
    if history.stopped_early:
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
    click.echo(_best_line(history))
    click.echo(f"run written to {result.run_dir}")
    if result.diverged:
        click.echo(f"warning: {result.diverged} with --lr", err=True)


def say_report(result: Any) -> None:
    """After :func:`say_result` (a run that trained): where its report was written, or how
    to write it (``--no-report``: the fast recipe leaves it for later)."""
    if result.already_complete:
        return
    if result.report is not None:
        click.echo(f"report written to {result.report}")
    elif not result.config.report:
        from mnistcnn.config.recipes import RECIPES

        recipe = result.config.recipe
        by_recipe = RECIPES.get(recipe or "", {}).get("report", True) is False
        why = f"the {recipe} recipe writes it on demand" if by_recipe else "--no-report"
        click.echo(
            f"report: not written ({why}); to write it: " + cli_command(resume_args(result.run_dir))
        )


def report_resume_hint(run: Path) -> Exception:
    """The CLI's words for a stop while the report was written (exit 130 via ``user_errors``)."""
    from mnistcnn.engine.loop import TrainingInterrupted

    return TrainingInterrupted(
        "stopped while writing the report; training is complete; to write its report: "
        + cli_command(resume_args(run)),
        None,
    )


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


def _say_complete(
    run_dir: Path, rows: list[dict[str, Any]], steps: int, config: Any, report: Path | None
) -> None:
    """What a resume of an already complete run did: nothing, or rebuilt its missing report."""
    done = plural(int(rows[-1]["epoch"]), "epoch") if rows else "all its epochs"
    if report is not None:
        why = "trained with --no-report" if not config.report else "stopped while it was written?"
        click.echo(
            f"{run_dir}: the run is already complete ({done} of {config.epochs}), but its "
            f"report is missing or incomplete ({why}); writing it now, no other file changes"
        )
        click.echo(f"report written to {report}")
    elif config.max_steps is not None and steps >= config.max_steps:
        click.echo(
            f"{run_dir}: the run stopped at --max-steps {config.max_steps} ({done} of "
            f"{config.epochs}, {plural(steps, 'step')}); nothing to do, no file changed "
            "(pass a larger --max-steps to train on)"
        )
    else:
        click.echo(
            f"{run_dir}: the run is already complete ({done} of {config.epochs}); nothing to "
            "do, no file changed (pass a larger --epochs to train on)"
        )
