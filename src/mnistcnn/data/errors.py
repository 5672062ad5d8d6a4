"""Errors of the data layer.

Every message names the file, what was expected, what was found and what the
user can do, so the CLI can print it as is (no traceback needed).
"""

from __future__ import annotations

import os

from mnistcnn.errors import MnistcnnError


class DataError(MnistcnnError, RuntimeError):
    """Base class of every data-layer error (a bad file, a missing dataset)."""


class IDXError(DataError):
    """A file that is not the IDX file it should be (bad magic, size, checksum, labels...)."""


class SourceError(DataError):
    """Every source of a dataset failed.

    Attributes:
        attempts: ``(source, filename, reason)`` for each thing tried, in order.
    """

    def __init__(self, message: str, attempts: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(message)
        self.attempts: list[tuple[str, str, str]] = list(attempts or [])


def source_failure_message(
    dataset: str,
    folder: str,
    raw_dir: str | os.PathLike[str],
    missing: list[str],
    attempts: list[tuple[str, str, str]],
    site: str,
    archive: str | None = None,
) -> str:
    """The text of a :class:`SourceError`.

    Args:
        dataset, folder: dataset name and its folder (``MNIST``).
        raw_dir: where the files should go.
        missing: uncompressed names of the files not obtained.
        attempts: ``(source, filename or "*", reason)`` in the order tried;
            attempts for files that were obtained are left out.
        site: where the official files can be downloaded.
        archive: name of the official archive holding the ``.gz`` files (EMNIST's
            ``gzip.zip``), if the dataset has one.
    """
    lines = [
        f"could not obtain {len(missing)} of the 4 files of dataset {dataset!r} "
        f"({', '.join(missing)}) into {raw_dir}/.",
        "Sources tried, in order:",
    ]
    groups: dict[str, list[tuple[str, str]]] = {}
    for label, fname, reason in attempts:
        if fname in missing or fname == "*":
            groups.setdefault(label, []).append((fname, reason))
    for i, (label, entries) in enumerate(groups.items(), 1):
        generic = {reason.replace(fname, "<file>") for fname, reason in entries}
        if len(entries) == 1:
            lines.append(f"  {i}. {label}: {entries[0][1]}")
        elif len(generic) == 1:
            lines.append(f"  {i}. {label}: {generic.pop()} (each of the {len(entries)} files)")
        else:
            lines.append(f"  {i}. {label}:")
            lines += [f"       {fname}: {reason}" for fname, reason in entries]
    gz = ", ".join(f"{name}.gz" for name in missing)
    lines.append(
        f"To provide the files by hand: download {gz} (from {site} or any copy) and put "
        f"them, compressed or not, into {raw_dir}/, or give a mirror DIR (mirror=DIR, "
        f"--mirror DIR, or MNISTCNN_MIRROR=DIR) where DIR holds DIR/{folder}/raw/<file>.gz "
        "or DIR/<file>.gz."
    )
    if archive is not None:
        lines.append(
            f"Or put the official {archive} (from {site}) into {raw_dir}/ or DIR/: each "
            "file's .gz is taken from it once its md5 is checked."
        )
    return "\n".join(lines)
