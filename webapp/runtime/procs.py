"""Small process helpers shared by the launchers: stop signals and clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterable


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (call from the main thread)."""
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return stopping


def stop_processes(processes: Iterable[subprocess.Popen], timeout_s: float = 10.0) -> None:
    """SIGTERM every live process, wait for each, SIGKILL whatever does not exit in time."""
    processes = list(processes)
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
