"""Run engine workers: ``manage.py runengines --workers 2``.

With one worker it runs in this process. With more, it starts that many child
processes (each ``runengines --workers 1``) and restarts any that die, so a
killed worker's simulations come back on another one from their logs.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

from django.core.management.base import BaseCommand

from webapp.runtime.procs import stop_on_signals, stop_processes
from webapp.runtime.worker import EngineWorker


class Command(BaseCommand):
    help = "Run engine worker processes that drive simulations and publish their frames."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workers", type=int, default=1, help="how many worker processes (default 1)")
        parser.add_argument("--max-sims", type=int, default=None, help="simulations one worker may run")

    def handle(self, *args, workers: int, max_sims: int | None, **options) -> None:
        if workers <= 1:
            asyncio.run(self._run_one(max_sims))
        else:
            self._supervise(workers, max_sims)

    async def _run_one(self, max_sims: int | None) -> None:
        worker = EngineWorker(max_sims=max_sims)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stopping.set)
        await worker.run()

    def _supervise(self, workers: int, max_sims: int | None) -> None:
        from django.conf import settings

        cmd = [sys.executable, str(settings.BASE_DIR / "manage.py"), "runengines", "--workers", "1"]
        if max_sims:
            cmd += ["--max-sims", str(max_sims)]
        children = [subprocess.Popen(cmd) for _ in range(workers)]
        stopping = stop_on_signals()
        while not stopping.wait(0.5):
            for index, child in enumerate(children):
                if child.poll() is not None and not stopping.is_set():
                    self.stderr.write(f"engine worker {child.pid} exited ({child.returncode}); starting another")
                    children[index] = subprocess.Popen(cmd)
        stop_processes(children)
