"""HTTP downloads that cannot hang: a connect/read timeout and an overall deadline.

torchvision's ``download_url`` takes no timeout, so a stalled server would
hang a run forever; this module streams with ``urllib.request.urlopen(url,
timeout=...)`` instead, reads with ``read1`` (returns as soon as any bytes
arrive, so a slow-drip server is caught by the deadline) and refuses bodies
larger than the file can be.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from mnistcnn.data.errors import DataError

logger = logging.getLogger(__name__)

USER_AGENT = "mnistcnn-data/0.1 (Python urllib)"
NET_CHUNK = 1 << 16  # bytes per read from the socket


class DownloadError(DataError):
    """A download failed.

    Attributes:
        unreachable: the server could not be reached or did not answer in time
            (worth skipping for the rest of the run), as opposed to an HTTP
            error for one file.
    """

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def per_file_deadline(timeout: float) -> float:
    """Overall seconds allowed for one file: ``max(60, 20 * timeout)``."""
    return max(60.0, 20.0 * timeout)


def download(url: str, dest: Path, *, timeout: float, deadline: float, max_bytes: int) -> int:
    """Stream ``url`` into ``dest``; return the number of bytes written.

    Args:
        url: http(s) URL.
        dest: file to (over)write; the caller deletes it on failure.
        timeout: seconds for connecting and for each read (``urlopen`` timeout).
        deadline: overall seconds for the whole file.
        max_bytes: refuse a larger body.

    Raises:
        DownloadError: HTTP error, unreachable server, timeout, deadline passed,
            connection closed early, or body too large.
    """
    start = time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(dest, "wb") as f:
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise DownloadError(f"{url}: {length} bytes announced, expected <= {max_bytes}")
            total = 0
            while chunk := resp.read1(NET_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise DownloadError(f"{url}: over {max_bytes} bytes, not the expected file")
                if time.monotonic() - start > deadline:
                    raise DownloadError(
                        f"{url}: gave up after {deadline:g} s (overall deadline per file; "
                        f"{total} bytes received)",
                        unreachable=True,
                    )
                f.write(chunk)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout:g} s (timed out)"
        raise DownloadError(f"{url}: cannot connect: {reason}", unreachable=True) from e
    except TimeoutError as e:
        raise DownloadError(f"{url}: timed out: no data for {timeout:g} s", unreachable=True) from e
    except http.client.IncompleteRead as e:
        raise DownloadError(
            f"{url}: connection closed early ({len(e.partial)} bytes of the last read; "
            "the download is truncated)"
        ) from e
    except (http.client.HTTPException, OSError) as e:
        raise DownloadError(f"{url}: {type(e).__name__}: {e}", unreachable=True) from e
    logger.debug("%s: %d bytes in %.2f s", url, total, time.monotonic() - start)
    return total
