"""Redis clients for the web process: one sync pool for views, async clients per event loop."""

from __future__ import annotations

import asyncio
import functools

import redis
from django.conf import settings
from redis import asyncio as aioredis

_async_clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
_frames_clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}


@functools.cache
def sync_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.from_url(settings.REDIS_URL, decode_responses=True, max_connections=200)
        _async_clients[loop] = client
    return client


def frames_redis() -> aioredis.Redis:
    """For the frame hub's pub/sub connection: bytes, not text (frames go to
    the browsers as the bytes the worker built, never decoded here)."""
    loop = asyncio.get_running_loop()
    client = _frames_clients.get(loop)
    if client is None:
        client = aioredis.from_url(settings.REDIS_URL)
        _frames_clients[loop] = client
    return client
