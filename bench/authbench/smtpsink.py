"""A local SMTP sink (aiosmtpd) in a process of its own, accepting every mail: what the
mail scenario's server sends to. It records, for each mail, when its DATA was accepted
and its Message-ID and recipient, and counts the connections it was sent over. Its own
process, pinned to the load generator's CPU, so that neither the bench's driver nor the
probe shares an event loop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

import uvloop
from aiosmtpd.smtp import SMTP, Envelope, Session

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Received:
    """What the sink has taken in: (accepted at, Message-ID, recipient) per mail."""

    mails: list[tuple[float, str, str]] = field(default_factory=list)
    connections: int = 0


class _Handler:
    def __init__(self, received: Received) -> None:
        self.received = received

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook
        content = envelope.original_content or b""
        head = content.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        message_id = found.group(1).decode("ascii", "replace") if found else ""
        recipient = ",".join(envelope.rcpt_tos)
        self.received.mails.append((time.monotonic(), message_id, recipient))
        return "250 OK"


class _CountingSMTP(SMTP):
    def __init__(self, handler: _Handler, received: Received) -> None:
        # A fixed name: aiosmtpd would otherwise look up the host's FQDN per connection.
        super().__init__(handler, hostname="bench-sink", ident="bench-sink")
        self._received = received

    def connection_made(self, transport: Any) -> None:
        self._received.connections += 1
        super().connection_made(transport)


async def _serve(pipe: Pipe, host: str) -> None:
    received = Received()
    handler = _Handler(received)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _CountingSMTP(handler, received), host, 0)
    port = server.sockets[0].getsockname()[1]
    pipe.send(port)
    try:
        while True:
            # Polled by the driver: answer without blocking the loop that takes the mail.
            while not pipe.poll():
                await asyncio.sleep(0.02)
            asked = pipe.recv()
            if asked == "count":
                pipe.send((len(received.mails), received.mails[-1][0] if received.mails else 0))
            elif asked == "collect":
                pipe.send((received.mails, received.connections))
                received.mails, received.connections = [], 0
            else:
                break
    finally:
        server.close()
        await server.wait_closed()


def _process(pipe: Pipe, cpu: int | None, host: str) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    uvloop.run(_serve(pipe, host))


class SMTPSink:
    """`count()` while mail arrives; `collect()` to take everything received so far."""

    def __init__(self, cpu: int | None, host: str = "127.0.0.1", deadline: float = 30) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_process, args=(child, cpu, host), name="smtp-sink", daemon=True
        )
        self._process.start()
        child.close()
        if not self._pipe.poll(deadline):
            self.close()
            raise RuntimeError(f"the SMTP sink did not start within {deadline} s")
        self.port: int = self._pipe.recv()
        self.url = f"smtp://{host}:{self.port}"

    @property
    def pid(self) -> int:
        pid = self._process.pid
        if pid is None:
            raise RuntimeError("the SMTP sink is not running")
        return pid

    def _ask(self, what: str, deadline: float = 30) -> Any:
        self._pipe.send(what)
        if not self._pipe.poll(deadline):
            raise RuntimeError(f"the SMTP sink did not answer {what!r} within {deadline} s")
        return self._pipe.recv()

    def count(self) -> tuple[int, float]:
        """Mails received so far, and when the last one was accepted (monotonic s)."""
        count, last = self._ask("count")
        return int(count), float(last)

    def collect(self) -> Received:
        mails, connections = self._ask("collect", deadline=120)
        return Received(list(mails), int(connections))

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._pipe.send("quit")
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._pipe.close()
