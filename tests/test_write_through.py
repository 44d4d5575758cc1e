"""Write-through for daphne's sockets (webapp/runtime/write_through.py): bytes
arrive whole and in order when the kernel takes part of a write or none of it,
and a real daphne serves the same bytes with it on and off."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from webapp.runtime import write_through

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def test_it_installs_on_the_twisted_this_project_runs():
    assert write_through.install()
    from twisted.internet import tcp

    assert getattr(tcp.Connection.write, "lab_write_through", False)


def slow_get(port: int, path: str) -> bytes:
    """GET with a 4 KiB receive buffer, reading 1 KiB at a time."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    time.sleep(0.3)  # let the server fill what the kernel accepts
    chunks = []
    while True:
        chunk = sock.recv(1024)
        if not chunk:
            break
        chunks.append(chunk)
        time.sleep(0.001)
    sock.close()
    return b"".join(chunks)


@pytest.mark.parametrize("write_through_on", ["1", "0"])
def test_a_slow_reader_gets_every_byte_in_order(clean_redis, start_daphne, write_through_on):
    server = start_daphne(LAB_WRITE_THROUGH=write_through_on)
    expected = (ROOT / "static" / "lab" / "kit.js").read_bytes()
    response = slow_get(server.port, "/static/lab/kit.js")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert len(body) == len(expected) and body == expected



class RecordingReactor:
    """Just what a Twisted FileDescriptor asks of its reactor when it writes."""

    def __init__(self) -> None:
        self.writers: set = set()

    def addWriter(self, fd) -> None:  # noqa: N802 - Twisted's name
        self.writers.add(fd)

    def removeWriter(self, fd) -> None:  # noqa: N802
        self.writers.discard(fd)


def test_partial_and_refused_sends_queue_the_rest_in_order():
    """A real TCP connection whose send buffer is tiny: the kernel takes part of a
    write, or none; what it did not take goes to Twisted's queue, later writes
    queue behind it, and the reader gets every byte in order."""
    from twisted.internet import tcp

    assert write_through.install()
    listener = socket.create_server(("127.0.0.1", 0))
    reader = socket.create_connection(listener.getsockname())
    server_side, _ = listener.accept()
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server_side.setblocking(False)
    reactor = RecordingReactor()
    connection = tcp.Connection(server_side, protocol=None, reactor=reactor)
    connection.connected = True
    sent = [bytes([65 + i % 26]) * (1000 + 37 * i) for i in range(200)]  # about 940 KB
    expected = b"".join(sent)
    received = bytearray()
    reader.setblocking(False)
    queued_writes = 0
    for chunk in sent:
        queued_writes += bool(connection._tempDataBuffer or connection in reactor.writers)
        connection.write(chunk)
        try:  # the reader drains a little now and then, as a slow viewer would
            received += reader.recv(2048)
        except BlockingIOError:
            pass
    deadline = time.monotonic() + 10
    while len(received) < len(expected) and time.monotonic() < deadline:
        if connection in reactor.writers:
            connection.doWrite()  # what the reactor does when the socket is writable
        try:
            received += reader.recv(65536)
        except BlockingIOError:
            time.sleep(0.001)
    assert queued_writes > 0, "the kernel took everything: nothing exercised the queue"
    assert bytes(received) == expected
    for sock in (reader, server_side, listener):
        sock.close()

