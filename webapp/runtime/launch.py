"""Start lab processes as children: engine workers and daphne servers.

Used by the tests and the benchmarks, which need real processes on loopback
ports that they can kill. (``manage.py runlab`` is the user-facing launcher.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import IO

import redis as redis_lib

from .procs import stop_processes
from .redis_embedded import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def child_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class Child:
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def _spawn(self, args: list[str], redis_url: str, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            args, env=child_env(redis_url, **env), stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def _fail(self, what: str) -> RuntimeError:
        self.stop()
        return RuntimeError(f"{what}: {self.log_path.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        stop_processes([self.proc])
        self.log.close()


class WorkerProcess(Child):
    """``manage.py runengines --workers 1``; ready once it has registered in Redis."""

    def __init__(self, redis_url: str, log_path: Path, **env: str) -> None:
        self._spawn([sys.executable, str(ROOT / "manage.py"), "runengines", "--workers", "1"], redis_url, log_path, env)
        client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if str(self.proc.pid) in client.hvals("lab:workers"):
                return
            if self.proc.poll() is not None:
                raise self._fail("worker exited")
            time.sleep(0.05)
        raise self._fail("worker did not start within 30 s")


class DaphneProcess(Child):
    """daphne on a free loopback port; ready once /healthz answers."""

    def __init__(self, redis_url: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "webapp.asgi:application"],
            redis_url, log_path, env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    raise self._fail("daphne exited") from None
                time.sleep(0.1)
        raise self._fail("daphne did not start within 30 s")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def open_new_sim(base_url: str, kind: str = "raft") -> tuple[str, str]:
    """GET /lab/KIND/ as a new learner would: returns (sim_id, Cookie header value)."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    try:
        opener.open(f"{base_url}/lab/{kind}/")
    except urllib.error.HTTPError as exc:
        if exc.code != 302:
            raise
        location = exc.headers["Location"]
    else:
        raise RuntimeError(f"/lab/{kind}/ did not redirect to a new simulation")
    return location.rstrip("/").split("/")[-1], "; ".join(f"{c.name}={c.value}" for c in jar)
