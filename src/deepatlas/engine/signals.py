"""Stopping on Ctrl-C / SIGTERM in two stages: the first signal asks to stop at a safe point, the second stops at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def stop_signals(on_first: Callable[[str], None], asked: Callable[[], bool]) -> Iterator[None]:
    """While active, SIGINT and SIGTERM call ``on_first(name)``, or raise ``KeyboardInterrupt`` when
    ``asked()`` says a stop was already requested. Handlers can only be set from the main thread:
    elsewhere this does nothing. The previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if asked():
            raise KeyboardInterrupt
        on_first(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
