"""Reading and writing simulations in Redis (async, for workers and consumers)."""

from __future__ import annotations

import json
from typing import Any

from redis import asyncio as aioredis

from . import keys
from .driver import SimSpec


async def load_spec(redis: aioredis.Redis, sim_id: str) -> SimSpec | None:
    meta, raw_log = await _meta_and_log(redis, sim_id)
    if not meta:
        return None
    return SimSpec(
        sim_id=sim_id,
        kind=meta["kind"],
        seed=int(meta["seed"]),
        params=json.loads(meta.get("params", "{}")),
        log=[json.loads(item) for item in raw_log],
        speed=float(meta.get("speed", "0.01")),
        paused=meta.get("paused", "0") == "1",
        now_ms=float(meta.get("now_ms", "0")),
        epoch=int(meta.get("epoch", "1")),
        checkpoint_epoch_ms=float(meta["checkpoint_epoch_ms"]) if meta.get("checkpoint_epoch_ms") else None,
    )


async def _meta_and_log(redis: aioredis.Redis, sim_id: str) -> tuple[dict[str, str], list[bytes]]:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.meta_key(sim_id))
        pipe.lrange(keys.log_key(sim_id), 0, -1)
        meta_raw, raw_log = await pipe.execute()
    meta = {k.decode(): v.decode() for k, v in meta_raw.items()}
    return meta, raw_log


async def append_log(redis: aioredis.Redis, sim_id: str, entry: dict[str, Any], checkpoint: dict[str, str]) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(keys.log_key(sim_id), json.dumps(entry, separators=(",", ":")))
        pipe.hset(keys.meta_key(sim_id), mapping=checkpoint)
        await pipe.execute()


async def reset_log(redis: aioredis.Redis, sim_id: str, checkpoint: dict[str, str]) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.log_key(sim_id))
        pipe.hset(keys.meta_key(sim_id), mapping=checkpoint)
        await pipe.execute()


async def lease_owner(redis: aioredis.Redis, sim_id: str) -> str | None:
    owner = await redis.get(keys.lease_key(sim_id))
    return owner.decode() if owner else None


# Extend a lease only while we still hold it: compare and expire in one step.
RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
