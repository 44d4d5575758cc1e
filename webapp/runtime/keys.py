"""Redis key names and channel names: the one place that spells them.

Per simulation:
- ``lab:sim:{id}``          hash: kind, seed, params (JSON), speed, paused, now_ms,
                            epoch, owner (sha256 of the owner capability), share
                            (the read-only token), created_ms
- ``lab:sim:{id}:log``      list of JSON {"at_ms", "cmd", "rid"}: the command log
- ``lab:sim:{id}:lease``    the channel name of the worker that runs it (expires)
- ``lab:sim:{id}:watched``  set by web processes while they have viewers (expires)
- ``lab:frames:{id}``       pub/sub channel: the simulation's frames
"""

ASSIGN_CHANNEL = "engines.assign"  # any worker takes a simulation from here
WORKER_LOAD = "lab:worker_load"  # hash: worker channel -> "<simulations>:<ms since the epoch>"
SIM_TTL_S = 7 * 24 * 3600
LEASE_MS = 6000
LEASE_RENEW_S = 2.0
WATCHED_TTL_S = 10
WATCHED_REFRESH_S = 3.0


def meta_key(sim_id: str) -> str:
    return f"lab:sim:{sim_id}"


def log_key(sim_id: str) -> str:
    return f"lab:sim:{sim_id}:log"


def lease_key(sim_id: str) -> str:
    return f"lab:sim:{sim_id}:lease"


def watched_key(sim_id: str) -> str:
    return f"lab:sim:{sim_id}:watched"


FRAMES_PREFIX = "lab:frames:"


def frames_channel(sim_id: str) -> str:
    """The Redis pub/sub channel of a simulation's frames. A message is
    ``b"<seq> "`` followed by the frame as the browser gets it (header JSON,
    newline, compressed view: ``driver.encode_frame``), built once."""
    return FRAMES_PREFIX + sim_id
