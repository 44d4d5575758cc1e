"""Writes: creating, commanding and closing simulations.

Views and consumers call these; they hold no business logic of their own.
A simulation's owner holds a capability (a random token) in their session;
Redis keeps only its hash. Read-only viewers use the share token in a link.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

import patterns
from webapp.runtime import keys

from .redis_clients import async_redis, sync_redis
from .selectors import session_sims


class CapReached(Exception):
    """The learner runs as many simulations as a session may; the message says what to do."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sim_create(*, session: Any, kind: str, seed: int | None = None, params: dict[str, Any] | None = None) -> str:
    sims = session_sims(session=session)
    cap = settings.LAB["MAX_SIMS_PER_SESSION"]
    if len(sims) >= cap:
        raise CapReached(
            f"You already run {len(sims)} simulations, the most one browser session may. "
            "Close one from its page (Close this simulation) and try again."
        )
    params = dict(params or {})
    seed = secrets.randbelow(2**31) if seed is None else seed
    patterns.create(kind, seed=seed, **params)  # validates kind and parameters; raises PatternsError
    sim_id = secrets.token_urlsafe(9)
    capability = secrets.token_urlsafe(24)
    share = secrets.token_urlsafe(12)
    r = sync_redis()
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(
            keys.meta_key(sim_id),
            mapping={
                "kind": kind,
                "seed": str(seed),
                "params": json.dumps(params),
                "speed": repr(settings.LAB["DEFAULT_SPEED"]),
                "paused": "0",
                "now_ms": "0.0",
                "epoch": "1",
                "owner": token_hash(capability),
                "share": share,
                "created_ms": str(int(time.time() * 1000)),
            },
        )
        pipe.expire(keys.meta_key(sim_id), keys.SIM_TTL_S)
        pipe.execute()
    sims[sim_id] = {"kind": kind, "cap": capability}
    session["sims"] = sims
    return sim_id


def sim_close(*, session: Any, sim_id: str) -> bool:
    sims = session_sims(session=session)
    if sim_id not in sims:
        return False
    del sims[sim_id]
    session["sims"] = sims
    r = sync_redis()
    owner = r.get(keys.lease_key(sim_id))
    r.delete(keys.meta_key(sim_id), keys.log_key(sim_id))
    if owner:
        from asgiref.sync import async_to_sync

        async_to_sync(get_channel_layer().send)(owner, {"type": "sim.close", "sim": sim_id})
    return True


async def sim_send(sim_id: str, message: dict[str, Any]) -> None:
    """Send a message to the worker that runs sim_id, or to any worker if none does."""
    owner = await async_redis().get(keys.lease_key(sim_id))
    layer = get_channel_layer()
    await layer.send(owner or keys.ASSIGN_CHANNEL, {**message, "sim": sim_id})


async def sim_ensure_running(sim_ids: list[str]) -> None:
    """Ask a worker to take every simulation in sim_ids that nobody runs."""
    if not sim_ids:
        return
    redis = async_redis()
    async with redis.pipeline(transaction=False) as pipe:
        for sim_id in sim_ids:
            pipe.set(keys.watched_key(sim_id), "1", ex=keys.WATCHED_TTL_S)
            pipe.exists(keys.lease_key(sim_id))
        results = await pipe.execute()
    layer = get_channel_layer()
    for index, sim_id in enumerate(sim_ids):
        if not results[2 * index + 1]:
            await layer.send(keys.ASSIGN_CHANNEL, {"type": "sim.open", "sim": sim_id})
