"""The HTTP app: ``create_app(predictor, settings)`` with the predictor injected.

Routes:

* ``POST /v1/predict``: one image or a batch (forms in :mod:`mnistcnn.serve.body`);
  answers ``{"model": name, "predictions": [obj, ...]}``, each ``obj`` the object
  ``mnistcnn predict --json`` prints, plus ``"input"`` (the 28x28 uint8 image
  the model saw, as 28 lists of 28 ints) with ``?return_input=true``.
* ``POST /v1/read``: the numbers written in one image or a batch (the same
  forms and limits): ``{"model": name, "readings": [obj, ...]}``, each ``obj``
  the object ``mnistcnn read --json`` prints (the text, and each digit's box,
  label, probability and unsure flag), plus each digit's ``"input"`` with
  ``?return_input=true``. 501 when the server has no reader (an ensemble).
* ``GET /v1/model``: :func:`mnistcnn.serve.info.model_info`.
* ``GET /healthz``: ``{"status": "ok"}``.
* ``GET /``: the drawing page; ``/static/...`` its script and style.
* ``/docs``, ``/openapi.json``: FastAPI's own.

Errors answer ``{"detail": message}`` with a 4xx status for anything the
client can fix (see ``docs/serve.md`` for the table), 503 when the server is
overloaded or a request runs past ``timeout_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from mnistcnn import __version__
from mnistcnn.serve.batching import MicroBatcher, Overloaded
from mnistcnn.serve.body import parse_body
from mnistcnn.serve.inputs import InputError, RawInput, decode_images
from mnistcnn.serve.middleware import AccessLogMiddleware, BodyLimitMiddleware, BodyTooLarge
from mnistcnn.serve.openapi import MODEL_RESPONSE, PREDICT_BODY, PREDICT_RESPONSES, READ_RESPONSES

STATIC = Path(__file__).with_name("static")
INLINE_DECODE_BYTES = 32 * 1024  # smaller requests are decoded on the event loop (< ~1 ms)


class PredictionLike(Protocol):
    """What the app needs of one prediction (:class:`mnistcnn.predict.Prediction`)."""

    input: np.ndarray | None
    error: str | None

    def to_dict(self) -> dict[str, Any]: ...


class PredictorLike(Protocol):
    """What the app needs of a predictor (:class:`mnistcnn.predict.Predictor`)."""

    def predict(self, inputs: Sequence[Any]) -> Sequence[PredictionLike]: ...


class ReaderLike(Protocol):
    """What the app needs of a reader (:class:`mnistcnn.predict.reader.Reader`)."""

    def read(self, inputs: Sequence[Any]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class ServeSettings:
    """Limits and tuning of the server.

    Attributes:
        max_body_bytes: largest request body, bytes (default 8 MiB); larger -> 413.
        max_image_side: largest width or height of an uploaded image, pixels.
        max_image_pixels: largest width * height of all the images of one request
            together, pixels (checked from their headers before any is decoded);
            more -> 413.
        max_images: most images in one request (batch forms); more -> 413.
        timeout_s: seconds a request may take from its first byte to its answer
            (reading, decoding, waiting for and running the model); past it -> 503.
            Request headers too must be complete within it (from the connection's
            opening, or from its previous answer): past it -> 408 and the
            connection is closed (:mod:`mnistcnn.serve.protocol`).
        batch_size: most images per model call when requests are batched.
        max_pending: requests that may wait for the model; one more -> 503.
        max_header_waits: connections that may wait for their request headers at
            once (slow or idle clients); one more is answered 503 and closed.
        cors_origins: origins whose pages may call the API from a browser
            (``"https://example.org"``; ``"*"`` for any), answered by
            Starlette's ``CORSMiddleware`` (preflight ``OPTIONS`` included).
            Empty (the default): no CORS headers, same-origin pages only.
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_image_side: int = 8192
    max_image_pixels: int = 40_000_000
    max_images: int = 64
    timeout_s: float = 10.0
    batch_size: int = 64
    max_pending: int = 1024
    max_header_waits: int = 1024
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.cors_origins, str):
            raise ValueError("cors_origins must be a list of origins, not one string")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        for origin in self.cors_origins:
            url = urlsplit(origin)
            if origin != "*" and (
                url.scheme not in ("http", "https") or not url.netloc or url.path or url.query
            ):
                raise ValueError(
                    f"cors_origins: {origin!r} is not an origin: give scheme://host[:port] "
                    "without a path or trailing slash (e.g. https://example.org), or *"
                )
        for name in (
            "max_body_bytes",
            "max_image_side",
            "max_image_pixels",
            "max_images",
            "max_header_waits",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


@dataclass
class _State:
    """What the routes share: stored on ``app.state.serve`` by :func:`create_app`."""

    settings: ServeSettings
    info: dict[str, Any]
    batcher: MicroBatcher
    reads: MicroBatcher | None = None


router = APIRouter()


def _state(request: Request) -> _State:
    return request.app.state.serve


async def _run(
    request: Request, batcher: MicroBatcher | None = None
) -> tuple[list[RawInput], bool, Sequence[Any]]:
    """Read, parse and decode the body, then wait for the model's answers (``batcher``'s)."""
    st = _state(request)
    body = await request.body()
    parsed = parse_body(request.headers.get("content-type"), body, st.settings.max_images)
    if len(body) <= INLINE_DECODE_BYTES:
        images = _decode_all(parsed.inputs, st.settings)
    else:
        images = await run_in_threadpool(_decode_all, parsed.inputs, st.settings)
    return parsed.inputs, parsed.batch, await (batcher or st.batcher).submit(images)


@router.post(
    "/v1/predict",
    summary="Recognise the digit in one image or a batch",
    openapi_extra=PREDICT_BODY,
    responses=PREDICT_RESPONSES,
)
async def predict(
    request: Request,
    return_input: bool = Query(False, description="Add the 28x28 image the model saw."),
) -> JSONResponse:
    """One prediction per image, in order; the forms and errors are in ``docs/serve.md``."""
    st = _state(request)
    timeout = st.settings.timeout_s
    try:
        inputs, batch, preds = await asyncio.wait_for(_run(request), timeout)
    except asyncio.TimeoutError:
        return _error(503, f"the request did not finish within {timeout:g} s; retry later")
    except Overloaded as exc:
        return _error(503, f"server overloaded ({exc}); retry later")
    if not batch and preds[0].error:
        return _error(422, f"{inputs[0].name}: {preds[0].error}")
    out = [_prediction_json(raw, p, return_input) for raw, p in zip(inputs, preds)]
    return JSONResponse({"model": st.info.get("name"), "predictions": out})


@router.post(
    "/v1/read",
    summary="Read the number written in one image or a batch: every digit, in order",
    openapi_extra=PREDICT_BODY,
    responses=READ_RESPONSES,
)
async def read(
    request: Request,
    return_input: bool = Query(False, description="Add each digit's 28x28 image the model saw."),
) -> JSONResponse:
    """One reading per image, in order; the forms, limits and errors of ``/v1/predict``."""
    st = _state(request)
    if st.reads is None:
        return _error(501, "this server reads no numbers (it serves an ensemble)")
    timeout = st.settings.timeout_s
    try:
        inputs, batch, readings = await asyncio.wait_for(_run(request, st.reads), timeout)
    except asyncio.TimeoutError:
        return _error(503, f"the request did not finish within {timeout:g} s; retry later")
    except Overloaded as exc:
        return _error(503, f"server overloaded ({exc}); retry later")
    if not batch and readings[0].error:
        return _error(422, f"{inputs[0].name}: {readings[0].error}")
    out = []
    for raw, r in zip(inputs, readings):
        obj = r.to_dict()
        obj["path"] = raw.filename
        if return_input:
            for d, dj in zip(r.digits, obj["digits"]):
                dj["input"] = None if d.input is None else np.asarray(d.input).tolist()
        out.append(obj)
    return JSONResponse({"model": st.info.get("name"), "readings": out})


@router.get("/v1/model", summary="The served model", responses=MODEL_RESPONSE)
async def model(request: Request) -> dict[str, Any]:
    """Architecture, dataset, classes, parameters, test accuracy and versions."""
    return _state(request).info


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """``{"status": "ok"}`` while the server runs."""
    return {"status": "ok"}


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The drawing page."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def _input_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return _error(exc.status, exc.message)


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    return _error(413, str(exc))


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's validation errors (query parameters) as one sentence, not a list."""
    assert isinstance(exc, RequestValidationError)
    return _error(422, "; ".join(_validation_message(e) for e in exc.errors()))


def _validation_message(error: dict[str, Any]) -> str:
    """``query parameter 'return_input' must be true or false, got 'foo'``."""
    loc = [str(x) for x in error.get("loc", ())]
    where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}" if len(loc) > 1 else "the request"
    got = error.get("input")
    if error.get("type") == "bool_parsing":
        return f"{where} must be true or false (or 1/0, yes/no, on/off), got {got!r}"
    return f"{where}: {error.get('msg', 'invalid')}, got {got!r}"


def create_app(
    predictor: PredictorLike,
    settings: ServeSettings | None = None,
    info: dict[str, Any] | None = None,
    reader: ReaderLike | None = None,
) -> FastAPI:
    """Build the FastAPI app around an already loaded ``predictor``.

    Args:
        predictor: anything with ``predict(list) -> list`` of predictions (see
            :class:`PredictorLike`); it receives decoded Pillow images and uint8
            (28, 28) arrays, never bytes or paths from the client. It is called
            from one worker thread at a time.
        settings: limits; :class:`ServeSettings` defaults.
        info: what ``GET /v1/model`` answers (:func:`mnistcnn.serve.info.model_info`);
            its ``name`` is echoed as ``model`` in predictions.
        reader: what ``POST /v1/read`` uses (:class:`mnistcnn.predict.reader.Reader`);
            None: a Reader over ``predictor`` when it is a plain
            :class:`~mnistcnn.predict.Predictor`, else ``/v1/read`` answers 501.

    Returns:
        The app; run it with uvicorn (``mnistcnn serve`` does).
    """
    s = settings or ServeSettings()
    batcher = MicroBatcher(lambda xs: predictor.predict(xs), s.batch_size, s.max_pending)
    reader = reader if reader is not None else _default_reader(predictor)
    reads = None
    if reader is not None:
        reads = MicroBatcher(lambda xs: reader.read(xs), s.batch_size, s.max_pending)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.aclose()
        if reads is not None:
            await reads.aclose()

    app = FastAPI(
        title="mnistcnn",
        version=__version__,
        summary="Handwritten-digit recognition with a trained mnistcnn checkpoint.",
        lifespan=lifespan,
    )
    app.state.serve = _State(s, dict(info or {}), batcher, reads)
    app.add_middleware(BodyLimitMiddleware, max_bytes=s.max_body_bytes)
    if s.cors_origins:  # answers preflights itself; outside the body limit
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(s.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
            max_age=600,
        )
    app.add_middleware(AccessLogMiddleware)  # outermost: also logs the middleware's 413s
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _default_reader(predictor: PredictorLike) -> ReaderLike | None:
    """A Reader over a plain Predictor (an ensemble or a stand-in has none)."""
    from mnistcnn.predict import Predictor
    from mnistcnn.predict.reader import Reader

    return Reader(predictor) if type(predictor) is Predictor else None


def _decode_all(inputs: list[RawInput], s: ServeSettings) -> list[Any]:
    return decode_images(inputs, s.max_image_side, s.max_image_pixels)


def _prediction_json(raw: RawInput, pred: PredictionLike, return_input: bool) -> dict[str, Any]:
    """``pred.to_dict()`` with ``path`` = the upload's file name (None for other forms)."""
    out = pred.to_dict()
    out["path"] = raw.filename
    if return_input:
        out["input"] = None if pred.input is None else np.asarray(pred.input).tolist()
    return out
