"""A dataset's official archive (EMNIST's ``gzip.zip``): its files' ``.gz`` taken from it.

:func:`from_archive` extracts one file's ``.gz`` from an archive on disk
(checked by :func:`check_archive`, its md5, once per fetch), and
:func:`from_archive_url` downloads the archive into the raw folder first (once:
the dataset's other splits use the same copy). Where these come in the order
of sources: :mod:`mnistcnn.data.sources`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mnistcnn._io import file_digest
from mnistcnn.data._fetch import FetchRun, Missing, from_file
from mnistcnn.data._files import scratch_file, staged_file
from mnistcnn.data.download import DownloadError, download, per_file_deadline
from mnistcnn.data.errors import IDXError
from mnistcnn.data.specs import IdxFileSpec

logger = logging.getLogger("mnistcnn.data.sources")  # the name its messages always had


def check_archive(path: Path, run: FetchRun) -> None:
    """Raise IDXError unless ``path`` is the official archive (md5; checked once per run)."""
    arch = run.spec.archive
    assert arch is not None
    if path not in run.archives:
        error = None
        size = path.stat().st_size
        if size > arch.max_bytes:
            error = f"{path}: {size} bytes, expected at most {arch.max_bytes}: not {arch.name}"
        else:
            actual = file_digest(path, "md5")
            if actual != arch.md5:
                error = (
                    f"{path}: expected md5 {arch.md5} (the official {arch.name}), found {actual}: "
                    f"a corrupt or different archive. Download {arch.name} again from "
                    f"{arch.urls[0] if arch.urls else 'the official site'}."
                )
        run.archives[path] = error
    error = run.archives[path]
    if error is not None:
        raise IDXError(error)


def from_archive(path: Path, f: IdxFileSpec, run: FetchRun) -> str:
    """Extract ``f``'s ``.gz`` from the verified archive ``path`` and install it."""
    import zipfile

    if not path.is_file():
        raise Missing(f"no {path.name} in {path.parent}/")
    check_archive(path, run)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if i.filename.rsplit("/", 1)[-1] == f.gz_name]
            if not members:
                raise IDXError(f"{path}: has no member {f.gz_name}")
            size = f.size(run.spec.image_shape)
            cap = size + size // 10 + 65536
            member = members[0]
            if member.file_size > cap:
                raise IDXError(
                    f"{path}:{member.filename}: {member.file_size} bytes, expected at most {cap}"
                )
            with scratch_file(run.raw_dir, f.gz_name) as tmp:
                with zf.open(member) as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                return from_file(tmp, f, run, where="", origin=f"{path}:{member.filename}")
    except zipfile.BadZipFile as e:
        raise IDXError(f"{path}: not a readable zip archive ({e})") from e


def from_archive_url(url: str, f: IdxFileSpec, run: FetchRun) -> str:
    """Download the official archive from ``url`` into the raw folder (once), then extract."""
    arch = run.spec.archive
    assert arch is not None
    if not run.allow_download:
        raise Missing("skipped: downloads disabled")
    base = url.rsplit("/", 1)[0] + "/"
    if base in run.dead or url in run.dead:
        raise Missing("skipped: unreachable or failed earlier in this run")
    final = run.raw_dir / arch.name
    if not final.is_file() or run.archives.get(final) is not None:  # none yet, or a bad one
        with staged_file(final) as tmp:  # named final once downloaded and checked
            try:
                n = download(url, tmp, timeout=run.timeout,
                             deadline=max(per_file_deadline(run.timeout), 3600.0),
                             max_bytes=arch.max_bytes)  # fmt: skip
                check_archive(tmp, run)
            except DownloadError as e:
                run.dead.add(base if e.unreachable else url)
                raise
            except IDXError as e:
                run.dead.add(url)
                raise IDXError(str(e).replace(str(tmp), url)) from e
        run.archives[final] = None
        logger.info("%s: downloaded %s (%d bytes) into %s", arch.name, url, n, final)
    desc = from_archive(final, f, run)
    return f"{desc} (downloaded from {url})"
