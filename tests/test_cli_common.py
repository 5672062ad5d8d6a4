"""The CLI's shared error handling: environment errors are one line, never a traceback."""

import errno

import click
import pytest
from click.testing import CliRunner

from mnistcnn.cli.common import os_error_message, user_errors


def _command(exc: BaseException) -> click.Command:
    @click.command()
    @user_errors
    def cmd() -> None:
        raise exc

    return cmd


@pytest.mark.parametrize(
    "exc, message",
    [
        (
            OSError(errno.EROFS, "Read-only file system", "/runs/a/.report.html.123.tmp"),
            "error: cannot write /runs/a: Read-only file system",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/runs/a/curves.png"),
            "error: cannot write /runs/a/curves.png: No space left on device",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/x.png"),
            "error: cannot access /srv/x.png: Permission denied",
        ),
        (
            NotADirectoryError(errno.ENOTDIR, "Not a directory", "/tmp/file/x.png"),
            "error: cannot use /tmp/file/x.png: Not a directory",
        ),
    ],
)
def test_os_errors_are_one_line_naming_the_users_path(exc, message):
    result = CliRunner().invoke(_command(exc))
    assert result.exit_code == 1
    assert result.output.strip() == message
    assert "Traceback" not in result.output


def test_os_error_without_a_file_name_gives_the_reason():
    assert os_error_message(OSError(errno.EIO, "Input/output error")) == "Input/output error"


def test_closed_pipe_is_a_quiet_success(monkeypatch):
    monkeypatch.setattr("mnistcnn.cli.common._silence_stdout", lambda: None)
    result = CliRunner().invoke(_command(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert result.exit_code == 0 and result.output == ""


def test_hints_name_the_command_the_user_can_run(monkeypatch, tmp_path):
    """make train users get make's form; without mnistcnn on PATH, python -m mnistcnn."""
    import shutil
    import sys

    from mnistcnn.cli.common import cli_command, interrupted_message, resume_args
    from mnistcnn.engine.loop import TrainingInterrupted

    run = tmp_path / "my run"
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/mnistcnn")
    assert cli_command(resume_args(run)) == f"mnistcnn train --resume '{run}'"
    assert cli_command(resume_args(run, 2)) == f"mnistcnn train --nproc 2 --resume '{run}'"
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli_command("models") == f"{sys.executable} -m mnistcnn models"
    monkeypatch.setenv("MAKELEVEL", "1")
    assert cli_command(resume_args(run)) == f"make train ARGS='--resume '\"'\"'{run}'\"'\"''"
    monkeypatch.delenv("MAKELEVEL")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/mnistcnn")
    stopped = TrainingInterrupted("stopped at epoch 2, step 9; x is resumable", run / "last.pt")
    assert interrupted_message(stopped) == (
        f"stopped at epoch 2, step 9; resume with: mnistcnn train --resume '{run}'"
    )
    done = TrainingInterrupted("stopped after the last epoch (3)", run / "last.pt", complete=True)
    assert interrupted_message(done).endswith(
        f"; to write its report: mnistcnn train --resume '{run}'"
    )
