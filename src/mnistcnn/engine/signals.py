"""Stop training cleanly on SIGINT / SIGTERM.

The first signal sets a flag that the training loop checks at each step
boundary and after each epoch's evaluation: it writes a resumable checkpoint
(or has just written it, at an epoch's end) and stops. A second signal stops at
once (SIGINT raises ``KeyboardInterrupt``, SIGTERM exits with status 143).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


class StopFlag:
    """Set when a stop was requested; ``signal_name`` says which signal asked."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def graceful_stop(enabled: bool = True) -> Iterator[StopFlag]:
    """Install SIGINT/SIGTERM handlers for the duration of the block (main thread only).

    Yields a :class:`StopFlag`; previous handlers are restored on exit. Off
    the main thread, or with ``enabled=False``, no handler is installed.
    """
    flag = StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def second(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def first(signum: int, frame: FrameType | None) -> None:
        flag.requested, flag.signal_name = True, signal.Signals(signum).name
        log.warning(
            "%s received: stopping after the current step or evaluation, with a resumable "
            "checkpoint (again to stop now)",
            flag.signal_name,
        )
        for sig in previous:
            signal.signal(sig, second)

    for sig in previous:
        signal.signal(sig, first)
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
