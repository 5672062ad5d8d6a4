"""One :func:`mnistcnn.data.sources.fetch_dataset` call's state, and its per-file sources.

:class:`FetchRun` is the state of one call; each ``from_*`` function tries one
source for one file (the file already present, a ``.gz`` beside it, a mirror or
system folder, a URL) and either installs the verified file, raises
:class:`Missing` (the source does not have it), or raises a
:class:`~mnistcnn.data.errors.DataError` (a bad file, never used). The order in
which they are tried: :mod:`mnistcnn.data.sources`; the official archive
(EMNIST): :mod:`mnistcnn.data.archive`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistcnn._io import file_digest
from mnistcnn.data import _state
from mnistcnn.data._files import (
    copy_capped,
    describe_content,
    gunzip_capped,
    read_head,
    scratch_file,
    sniff,
    staged_file,
)
from mnistcnn.data.download import DownloadError, download, per_file_deadline
from mnistcnn.data.errors import DataError, IDXError
from mnistcnn.data.idx import validate_idx_file
from mnistcnn.data.specs import DatasetSpec, IdxFileSpec

logger = logging.getLogger("mnistcnn.data.sources")  # the name its messages always had

ENV_ROOT = "MNISTCNN_DATA"
ENV_MIRROR = "MNISTCNN_MIRROR"
PRESENT = "already present"


class Missing(Exception):
    """The source does not have the file (as opposed to a bad file)."""


@dataclass
class FetchRun:
    """State of one :func:`fetch_dataset` call (nothing outlives it)."""

    spec: DatasetSpec
    raw_dir: Path
    mirror: str | None
    timeout: float
    allow_download: bool
    stamps: dict[str, Any]
    attempts: list[tuple[str, str, str]] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    unreachable: list[str] = field(default_factory=list)  # sources whose site did not answer
    archives: dict[Path, str | None] = field(default_factory=dict)  # path -> error or None (ok)


def is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def verify(path: Path, f: IdxFileSpec, spec: DatasetSpec, *, md5: bool = True) -> None:
    validate_idx_file(
        path, f.kind, count=f.count, num_classes=spec.num_classes,
        image_shape=spec.image_shape, md5=f.md5 if md5 else None,
        first_label=spec.label_offset,
    )  # fmt: skip


def use_present(f: IdxFileSpec, run: FetchRun) -> str:
    path = run.raw_dir / f.name
    if not path.is_file():
        raise Missing("not present")
    unchanged = _state.stamp_matches(run.stamps.get(f.name), path, f.md5)
    try:
        verify(path, f, run.spec, md5=not unchanged)
    except IDXError as e:
        run.stamps.pop(f.name, None)
        aside = path.with_name(path.name + ".invalid")
        try:
            os.replace(path, aside)
        except OSError:
            raise e from None
        raise IDXError(f"{e} (moved aside to {aside.name})") from e
    if not unchanged and f.md5 is not None:
        run.stamps[f.name] = _state.stamp_of(path, f.md5)
    return PRESENT


def install(f: IdxFileSpec, run: FetchRun, write: Callable[[Path], object], origin: str) -> None:
    """Write a file through ``write(tmp)``, verify it, then rename it into place."""
    final = run.raw_dir / f.name
    with staged_file(final) as tmp:
        try:
            write(tmp)
            verify(tmp, f, run.spec)
        except IDXError as e:
            raise IDXError(str(e).replace(str(tmp), f"{f.name} from {origin}")) from e
    if f.md5 is not None:
        run.stamps[f.name] = _state.stamp_of(final, f.md5)
    elif not any(origin.startswith(f"{p}:") for p, err in run.archives.items() if err is None):
        logger.warning("%s: no known md5 for the uncompressed file; structure checked only", f.name)


def from_local_gz(src: Path, f: IdxFileSpec, run: FetchRun) -> str:
    if not src.is_file():
        raise Missing("not present")
    return from_file(src, f, run, where="")


def from_file(src: Path, f: IdxFileSpec, run: FetchRun, where: str, origin: str = "") -> str:
    """Copy or extract ``src`` (gzip or IDX, judged by content) into the raw folder."""
    try:
        return _from_file_unchecked(src, f, run, where, origin or str(src))
    except IDXError as e:
        if not origin:
            raise
        raise IDXError(str(e).replace(str(src), origin)) from e


def _from_file_unchecked(src: Path, f: IdxFileSpec, run: FetchRun, where: str, origin: str) -> str:
    kind = sniff(read_head(src))
    size = f.size(run.spec.image_shape)
    if kind == "gzip":
        if f.md5 is None and f.gz_md5 is not None:
            actual = file_digest(src, "md5")
            if actual != f.gz_md5:
                raise IDXError(
                    f"{origin}: expected md5 {f.gz_md5} (the official {f.gz_name}), found "
                    f"{actual}. Download {f.gz_name} again from the official site."
                )
        install(f, run, lambda tmp: gunzip_capped(src, tmp, size), origin)
        return f"extracted from {where}{origin}"
    if kind == "idx":
        install(f, run, lambda tmp: copy_capped(src, tmp, size), origin)
        return f"copied from {where}{origin}"
    expected = "gzip" if src.suffix == ".gz" else "IDX"
    raise IDXError(
        f"{origin}: expected {expected} data for {f.name}, found {describe_content(kind)}. "
        f"Replace it with the original {f.gz_name}."
    )


def from_dir(d: Path | None, what: str, f: IdxFileSpec, run: FetchRun) -> str:
    if d is None:
        raise Missing(f"none given (mirror=DIR, --mirror DIR, or ${ENV_MIRROR})")
    if not d.is_dir():
        note = " (not installed)" if what == "system dir" else ""
        raise Missing(f"{d} is not a folder{note}")
    sub = d / run.spec.folder / "raw"
    errors = []
    for p in (sub / f.name, sub / f.gz_name, d / f.name, d / f.gz_name):
        if p.is_file():
            try:
                return from_file(p, f, run, where=f"{what} ")
            except DataError as e:
                errors.append(str(e))
    if errors:
        raise IDXError("; ".join(errors))
    raise Missing(f"no {f.name} or {f.gz_name} in {sub}/ or {d}/")


def from_url(base: str, f: IdxFileSpec, run: FetchRun) -> str:
    if not run.allow_download:
        raise Missing("skipped: downloads disabled")
    if base in run.dead:
        raise Missing("skipped: unreachable earlier in this run")
    url = base.rstrip("/") + "/" + f.gz_name
    size = f.size(run.spec.image_shape)
    with scratch_file(run.raw_dir, f.gz_name) as tmp:
        try:
            n = download(url, tmp, timeout=run.timeout, deadline=per_file_deadline(run.timeout),
                         max_bytes=size + size // 10 + 65536)  # fmt: skip
        except DownloadError as e:
            if e.unreachable:
                run.dead.add(base)
            raise
        from_file(tmp, f, run, where="", origin=url)
    logger.info("%s: served by mirror %s (%s, %d bytes)", f.name, base, url, n)
    return f"downloaded from {url}"
