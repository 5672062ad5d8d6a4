"""uvicorn's HTTP protocol with a deadline on request headers and a bound on waiting connections.

uvicorn times out neither a connection that never completes its request headers
nor one that sends them one byte at a time (uvicorn issue 157, "slowloris"): its
keep-alive timer only runs *between* requests, and ``limit_concurrency`` is
checked only once the headers are complete. The app's own ``timeout_s`` starts
when the headers are complete, so a slow *body* is answered 503, but slow headers
would hold the connection (and a file descriptor) for ever.

:class:`HeaderDeadlineProtocol` is the protocol uvicorn would pick (httptools when
installed, else h11) with two additions:

* a connection waiting for request headers (a new connection, or a kept-alive one
  after its last answer) must complete them within ``header_timeout_s``; past it
  the connection is answered ``408`` (when it sent a part of a request) and closed;
* at most ``max_header_waits`` connections may wait for their headers at once;
  one more is answered ``503`` and closed at once.

The settings travel on the uvicorn config (:class:`ServerConfig`), which worker
processes receive pickled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger(__name__)

_Base: Any = AutoHTTPProtocol  # httptools' protocol when installed, else h11's


class ServerConfig(uvicorn.Config):
    """``uvicorn.Config`` that serves with :class:`HeaderDeadlineProtocol`.

    Args:
        app: the ASGI app (or its import string, with ``factory=True``).
        header_timeout_s: seconds a connection may take to complete its request
            headers (> 0).
        max_header_waits: most connections waiting for request headers at once (>= 1).
        **kwargs: passed to ``uvicorn.Config``.

    Raises:
        ValueError: a limit out of range.
    """

    def __init__(
        self, app: Any, *, header_timeout_s: float, max_header_waits: int, **kwargs: Any
    ) -> None:
        if not header_timeout_s > 0:
            raise ValueError(f"header_timeout_s must be > 0, got {header_timeout_s}")
        if max_header_waits < 1:
            raise ValueError(f"max_header_waits must be >= 1, got {max_header_waits}")
        super().__init__(app, http=HeaderDeadlineProtocol, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.max_header_waits = max_header_waits


def _response(status: int, reason: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer ``{"detail": ...}`` that closes the connection."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeaderDeadlineProtocol(_Base):
    """uvicorn's HTTP protocol with a header deadline and a bound on waiting connections
    (see the module docstring); the settings come from :class:`ServerConfig`."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout_s: float = getattr(config, "header_timeout_s", 10.0)
        self.max_header_waits: int = getattr(config, "max_header_waits", 1024)
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of a request arrived, its headers are not complete

    @property
    def waiting_for_headers(self) -> bool:
        """True while the connection has no request whose headers are complete and unanswered."""
        return not self.transport.is_closing() and (
            self.cycle is None or self.cycle.response_complete
        )

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        waiting = sum(1 for c in self.connections if getattr(c, "_header_timer", None))
        if waiting >= self.max_header_waits:
            log.warning("refused a connection: %d connections wait for their headers", waiting)
            detail = f"too many connections ({waiting}) are waiting to send a request; retry later"
            transport.write(_response(503, "Service Unavailable", detail))
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._partial = False
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is None:
            return
        if self.waiting_for_headers:
            self._partial = True
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.waiting_for_headers:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self.waiting_for_headers:
            return
        if self._partial:
            detail = f"request headers not complete within {self.header_timeout_s:g} s"
            self.transport.write(_response(408, "Request Timeout", detail))
        self.transport.close()
