"""Run the app with uvicorn: one process, or ``workers`` processes sharing the port.

:func:`run_server` loads the checkpoint once (so a bad file fails before the
port is bound), builds the app and blocks serving it until interrupted. With
several workers uvicorn starts each process on :func:`app_from_env`, which
reads the same settings from the environment and loads its own copy of the model.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mnistcnn.errors import MnistcnnError
from mnistcnn.prepare import InvertMode
from mnistcnn.serve.app import ServeSettings, create_app

log = logging.getLogger(__name__)
ENV_CONFIG = "MNISTCNN_SERVE_CONFIG"
#: Seconds a worker process may take to answer its supervisor (uvicorn's health check).
WORKER_START_S = 60


@dataclass(frozen=True)
class ModelSource:
    """Where the served model comes from and how the Predictor treats inputs.

    Attributes:
        checkpoint: a checkpoint file, a run directory (its best.pt) or an
            ``.onnx`` written by ``mnistcnn export`` (run by ONNX Runtime).
        device: torch device string, e.g. ``cpu`` or ``cuda``.
        invert: polarity handling of pictures: ``auto``, ``yes`` or ``no``.
        threshold: probability below which a prediction is ``unsure`` (None:
            the Predictor's default).
        torch_threads: torch intra-op threads of the serving process (None: leave
            torch's setting). One is fastest for single-image forward passes of
            these small models, and avoids threads spinning against each other
            on a busy machine.
        ensemble: more checkpoints averaged with ``checkpoint``
            (:class:`~mnistcnn.predict.ensemble.EnsemblePredictor`); empty: one model.
        tta: test-time augmentation (:data:`~mnistcnn.predict.tta.DEFAULT_VIEWS`).
    """

    checkpoint: str
    device: str = "cpu"
    invert: InvertMode = "auto"
    threshold: float | None = None
    torch_threads: int | None = None
    ensemble: tuple[str, ...] = ()
    tta: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.ensemble, str):
            raise ValueError("ensemble must be a list of checkpoints, not one string")
        object.__setattr__(self, "ensemble", tuple(str(p) for p in self.ensemble))


class AddressError(MnistcnnError, OSError):
    """The server cannot listen on ``host:port``; the message says why and what to try.

    Attributes:
        host, port: the address asked for.
        errno: the socket error number (``errno.EADDRINUSE`` when the port is taken).
        reason: the system's words (``Address already in use``).
        advice: what to do, in the library's terms (``port=0``); the command
            line says it with its flags (:meth:`cli_message`).
    """

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        self.host, self.port, self.errno = host, port, exc.errno
        self.reason = exc.strerror or str(exc)
        self.in_use = exc.errno == errno.EADDRINUSE
        if self.in_use:
            self.advice = (
                f"port {port} is taken (another server, or an earlier one still running): "
                f"choose another port, or port 0 for any free one"
            )
        elif exc.errno == errno.EACCES:
            self.advice = "ports below 1024 need administrator rights: choose 1024 or above"
        elif exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(
            exc, socket.gaierror
        ):
            self.advice = f"{host!r} is not an address of this machine: use 127.0.0.1 or 0.0.0.0"
        else:
            self.advice = "choose another host or port"
        super().__init__(f"cannot listen on {host}:{port}: {self.reason}; {self.advice}")

    def cli_message(self) -> str:
        """One line for ``mnistcnn serve``: the reason and the flags to try."""
        if self.in_use:
            other = self.port + 1 if 0 < self.port < 65535 else 8080
            advice = (
                f"port {self.port} is taken (another server, or an earlier one still "
                f"running): try --port {other}, or --port 0 for any free port"
            )
        elif self.errno == errno.EACCES:
            advice = "ports below 1024 need administrator rights: try --port 8000"
        else:
            advice = self.advice.replace("use 127.0.0.1", "use --host 127.0.0.1")
        return f"cannot listen on {self.host}:{self.port}: {self.reason}; {advice}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``, as uvicorn binds it (``SO_REUSEADDR``, IPv6
    when ``host`` has a colon), ready to pass to uvicorn with ``sockets=[...]``.

    Raises:
        AddressError: the port is taken, privileged, or ``host`` is not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AddressError(host, port, exc) from None
    sock.set_inheritable(True)
    return sock


def build_app(source: ModelSource, settings: ServeSettings | None = None) -> FastAPI:
    """Load the Predictor named by ``source`` and build the app around it.

    Raises:
        CheckpointError: the checkpoint is missing or unusable.
        ValueError: bad ``invert`` or ``threshold``.
    """
    import torch

    from mnistcnn.predict import Predictor
    from mnistcnn.predict.ensemble import EnsemblePredictor
    from mnistcnn.serve.info import describe_checkpoint, ensemble_info

    if source.torch_threads:
        torch.set_num_threads(source.torch_threads)
    if source.ensemble or source.tta:
        predictor: Predictor = EnsemblePredictor.from_checkpoints(
            [source.checkpoint, *source.ensemble],
            device=source.device,
            invert=source.invert,
            threshold=source.threshold,
            tta=source.tta,
        )
    else:
        predictor = Predictor.from_checkpoint(
            source.checkpoint,
            device=source.device,
            invert=source.invert,
            threshold=source.threshold,
        )
    info = describe_checkpoint(source.checkpoint)
    info.update(
        calibrated=predictor.calibrated,
        temperature=predictor.temperature,
        unsure_below=predictor.threshold,
    )
    if isinstance(predictor, EnsemblePredictor):
        info.update(ensemble_info(predictor))
    log.info("loaded %s (%s) from %s", info["name"], info["dataset"], source.checkpoint)
    return create_app(predictor, settings, info)


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings from ``$MNISTCNN_SERVE_CONFIG``.

    Raises:
        RuntimeError: the variable is not set (this factory is internal to
            :func:`run_server`).
    """
    raw = os.environ.get(ENV_CONFIG)
    if not raw:
        raise RuntimeError(f"{ENV_CONFIG} is not set; start the server with `mnistcnn serve`")
    cfg = json.loads(raw)
    return build_app(ModelSource(**cfg["source"]), ServeSettings(**cfg["settings"]))


def run_server(
    source: ModelSource,
    settings: ServeSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM), on ``http://host:port``.

    The socket is bound here, after the model is loaded and before the
    workers start, so ``port=0`` (any free port) is known at once:
    ``on_listening`` receives the real address, e.g. ``http://127.0.0.1:41235/``.

    Args:
        source: the checkpoint and Predictor options.
        settings: limits (:class:`ServeSettings` defaults).
        host: interface to bind; ``127.0.0.1`` is this machine only, ``0.0.0.0`` all.
        port: TCP port; 0 picks a free one.
        workers: processes; each loads its own model (and sets
            ``source.torch_threads``).
        on_listening: called once with the URL the server listens on.

    Raises:
        CheckpointError: the checkpoint is unusable (checked before binding).
        ValueError: ``workers`` < 1.
        AddressError: the address cannot be bound (the port is taken, a
            privileged port, a host name this machine does not have).
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from mnistcnn.serve.protocol import ServerConfig

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    settings = settings or ServeSettings()
    options: dict[str, Any] = {"host": host, "port": port, "log_config": None, "access_log": False}
    options.update(header_timeout_s=settings.timeout_s, max_header_waits=settings.max_header_waits)
    if workers == 1:
        config = ServerConfig(build_app(source, settings), **options)
    else:
        from mnistcnn.artifact import is_onnx_file, load_checkpoint, load_onnx

        for path in (source.checkpoint, *source.ensemble):  # fail here, not in every worker
            (load_onnx if is_onnx_file(path) else load_checkpoint)(path)
        src = dataclasses.replace(
            source,
            checkpoint=str(Path(source.checkpoint).resolve()),
            ensemble=tuple(str(Path(p).resolve()) for p in source.ensemble),
        )
        cfg: dict[str, Any] = {
            "source": dataclasses.asdict(src),
            "settings": dataclasses.asdict(settings),
        }
        os.environ[ENV_CONFIG] = json.dumps(cfg)
        # a worker imports torch and loads the model before it answers the supervisor's
        # ping; uvicorn's 5 s default kills and restarts it for ever on a busy machine
        config = ServerConfig(
            "mnistcnn.serve.server:app_from_env",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_START_S,
            **options,
        )
    sock = bind_socket(host, port)  # port 0 becomes a real port here
    sock.listen(config.backlog)  # connections wait in the backlog until the server starts
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if on_listening is not None:
        on_listening(f"http://{shown}:{bound}/")
    try:
        if workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        else:
            Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
