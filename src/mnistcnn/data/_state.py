"""What the data layer remembers in a raw folder.

* ``SOURCES.json``: ``{file name: where it came from}`` (provenance), reported by
  :func:`mnistcnn.data.dataset_info`.
* ``.verified.json``: ``{file name: {"size", "mtime_ns", "md5"}}`` for files whose
  md5 was checked, so later calls skip re-hashing an unchanged file. A file
  whose size or modification time changed is hashed again.

Both are written atomically; an unreadable one is treated as empty.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mnistcnn.data._files import staged_file

logger = logging.getLogger(__name__)

SOURCES_FILE = "SOURCES.json"
STAMP_FILE = ".verified.json"


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` if missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically; log a warning (not an error) if the folder is read-only."""
    try:
        with staged_file(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as e:
        logger.warning("could not write %s: %s", path, e)


def stamp_of(path: Path, md5: str | None) -> dict[str, Any]:
    """The stamp of a file just verified against ``md5``."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": md5}


def stamp_matches(stamp: Any, path: Path, md5: str | None) -> bool:
    """Whether ``path`` is unchanged since it was verified against ``md5``."""
    if not isinstance(stamp, dict) or md5 is None:
        return False
    try:
        return stamp == stamp_of(path, md5)
    except OSError:
        return False


def record_provenance(raw_dir: Path, sources: dict[str, str], present: str) -> dict[str, str]:
    """Merge one fetch's ``sources`` into ``SOURCES.json``; return each file's provenance.

    A file described as ``present`` (found already in place) keeps its recorded
    origin, or gets "origin unknown" if none was recorded.
    """
    path = raw_dir / SOURCES_FILE
    prov = read_json(path)
    before = dict(prov)
    for fname, desc in sources.items():
        if desc != present:
            prov[fname] = desc
        elif fname not in prov:
            prov[fname] = f"{present} when first checked (origin unknown)"
    if prov != before:
        write_json(path, prov)
    return {fname: str(prov[fname]) for fname in sources}
