"""Ctrl-C (SIGINT) handled by the run while a stretch of it must not be cut short."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def on_ctrl_c(decide: Callable[[], bool]) -> Iterator[None]:
    """Inside, each Ctrl-C calls ``decide``; the handler it would have gone to (Python's raises
    ``KeyboardInterrupt``) runs too only when ``decide`` says True. Only where Python takes signals, the main
    thread, and only over a handler written in Python: SIGINT ignored stays ignored, and one left to the
    system stays so."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if decide():
            previous(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
