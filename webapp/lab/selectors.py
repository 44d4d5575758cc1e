"""Reads: which simulations a session owns, and who may do what with one."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from webapp.runtime import keys

from .redis_clients import async_redis, sync_redis

OWNER, VIEWER = "owner", "viewer"


def session_sims(*, session: Any) -> dict[str, dict[str, str]]:
    """The session's simulations that still exist, {sim_id: {"kind", "cap"}}."""
    sims = dict(session.get("sims") or {})
    if not sims:
        return {}
    r = sync_redis()
    with r.pipeline(transaction=False) as pipe:
        for sim_id in sims:
            pipe.exists(keys.meta_key(sim_id))
        alive = pipe.execute()
    live = {sim_id: info for (sim_id, info), ok in zip(sims.items(), alive) if ok}
    if len(live) != len(sims):
        session["sims"] = live
    return live


def sim_for_kind(*, session: Any, kind: str) -> str | None:
    """The newest simulation of this kind the session owns."""
    matches = [sim_id for sim_id, info in session_sims(session=session).items() if info.get("kind") == kind]
    return matches[-1] if matches else None


def sim_meta(*, sim_id: str) -> dict[str, str]:
    return sync_redis().hgetall(keys.meta_key(sim_id))


def _role(meta: dict[str, str], sim_id: str, session_sims_raw: Any, watch: str | None) -> str | None:
    if not meta:
        return None
    info = (session_sims_raw or {}).get(sim_id) if isinstance(session_sims_raw, dict) else None
    if isinstance(info, dict) and isinstance(info.get("cap"), str):
        digest = hashlib.sha256(info["cap"].encode()).hexdigest()
        if hmac.compare_digest(digest, meta.get("owner", "")):
            return OWNER
    if watch and hmac.compare_digest(watch, meta.get("share", "")):
        return VIEWER
    return None


def sim_role(*, session: Any, sim_id: str, watch: str | None) -> tuple[str | None, dict[str, str]]:
    meta = sim_meta(sim_id=sim_id)
    return _role(meta, sim_id, session.get("sims"), watch), meta


async def sim_role_async(*, session: Any, sim_id: str, watch: str | None) -> str | None:
    meta = await async_redis().hgetall(keys.meta_key(sim_id))
    return _role(meta, sim_id, session.get("sims") if session is not None else None, watch)
