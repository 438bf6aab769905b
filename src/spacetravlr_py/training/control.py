"""Stopping and pausing a run: Ctrl-C / SIGTERM, and requests from a front end (e.g. a dashboard).

Every way of stopping gives the same guarantees: finished genes are kept, genes being trained are
abandoned without partial files, locks are released, and running the same command again continues.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class RunControl:
    """Requests to a running training, honoured by the executors.

    ``pause()`` stops handing out new genes (genes in flight finish); ``resume()`` continues;
    ``stop()`` ends the run like Ctrl-C.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def checkpoint(self, timeout: float | None = None) -> None:
        """Before handing out a gene: wait while paused (up to ``timeout`` s); raise
        :class:`KeyboardInterrupt` when a stop was requested, so the run ends like Ctrl-C."""
        self._running.wait(timeout)
        if self._stop.is_set():
            raise KeyboardInterrupt

    def may_dispatch(self) -> bool:
        """Non-blocking form of :meth:`checkpoint`: False while paused (raises when stopping)."""
        if self._stop.is_set():
            raise KeyboardInterrupt
        return self._running.is_set()


def _ignore_signal(signum: int, frame: object) -> None:
    """A Python-level no-op (not SIG_IGN: a signal already pending when the handler changes would then
    be reported as 'ignored due to race condition')."""


def interrupt_once(signum: int, frame: object) -> None:
    """First Ctrl-C or SIGTERM: ignore further ones, so that the clean-up they start (removing a
    temporary file, releasing a lock) cannot itself be cut short, then unwind like Ctrl-C."""
    signal.signal(signal.SIGINT, _ignore_signal)
    signal.signal(signal.SIGTERM, _ignore_signal)
    raise KeyboardInterrupt


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, and the first of them as the only one, while genes are trained."""
    try:
        old = {s: signal.signal(s, interrupt_once) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not in the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
