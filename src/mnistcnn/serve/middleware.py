"""ASGI middleware of the server: the body-size limit and the one-line access log."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("mnistcnn.serve.access")


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit:,} bytes")
        self.limit = limit


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    """Send a complete JSON response from middleware (``payload`` -> UTF-8 body)."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes``: 413 at once when ``Content-Length`` says so,
    else :class:`BodyTooLarge` from ``receive`` as soon as the streamed body passes the limit
    (a chunked upload is never read into memory beyond ``max_bytes``)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_json(send, 400, {"detail": "Content-Length is not a number"})
                return
            if declared > self.max_bytes:
                detail = (
                    f"request body is {declared:,} bytes; the limit is {self.max_bytes:,} bytes"
                )
                await send_json(send, 413, {"detail": detail})
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class AccessLogMiddleware:
    """Log one line per HTTP request, after the response: ``METHOD PATH STATUS MS ms``.

    Logged at INFO on ``mnistcnn.serve.access``; a request that raised is logged
    as status 500 before the error propagates.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            ms = (time.perf_counter() - start) * 1000
            access_log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, ms)
