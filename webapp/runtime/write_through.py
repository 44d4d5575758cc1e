"""Write-through for daphne's TCP connections.

Twisted never writes to a socket from ``transport.write()``: it queues the
bytes, registers the socket for writability, and writes on the next loop
iteration, then unregisters it. Under daphne's asyncio reactor every
registration is an epoll_ctl plus a ``selectors`` key rebuild. For a frame
sent to 600 viewers 20 times a second that dance was 35 to 40% of the web
process's CPU (py-spy, docs/STREAMING.md). asyncio's own transports, and the
bare ``websockets`` server we measure against, try the socket at once.

``install()`` makes Twisted's TCP ``Connection.write`` do the same: when
nothing is queued, send straight away and queue only what the kernel did not
take. Ordering is kept (we only send directly when the queue is empty), TLS
connections and anything unexpected fall through to Twisted's own path, and
errors are left for that path to report. ``LAB_WRITE_THROUGH=0`` turns it off.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("lab.write_through")


def install() -> bool:
    """Patch Twisted's TCP connections in this process; True when active."""
    if os.environ.get("LAB_WRITE_THROUGH", "1") != "1":
        return False
    try:
        from twisted.internet import abstract, tcp
    except ImportError:  # not under daphne
        return False
    connection = tcp.Connection
    queued_write = connection.write
    if getattr(queued_write, "lab_write_through", False):
        return True
    expected = ("dataBuffer", "offset", "TLS", "connected", "_writeDisconnected")
    if not all(hasattr(connection, name) for name in expected) or "_tempDataBuffer" not in abstract.FileDescriptor.__init__.__code__.co_names:
        log.warning("Twisted's TCP transport changed shape; write-through not installed")
        return False

    def write(self, data: bytes) -> None:
        if (
            data
            and not self.TLS
            and self.connected
            and not self._writeDisconnected
            and not self._tempDataBuffer
            and self.offset == len(self.dataBuffer)
        ):
            try:
                sent = self.socket.send(data)
            except OSError:  # would block, or the connection is gone: Twisted's path decides
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        queued_write(self, data)

    write.lab_write_through = True  # type: ignore[attr-defined]
    connection.write = write
    return True
