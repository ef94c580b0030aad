"""connection_pacing.py: a burst of new connections has its first requests parsed a few
per turn of the event loop, while the connections already served are read every turn.

A real uvicorn server with the protocol, in the test's event loop, and real sockets:
the burst is connected and sent before the loop gets a turn, as a flood arrives."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from authapi.connection_pacing import NEW_CONNECTIONS_PER_TURN, PacedHttpToolsProtocol
from tests.support.loop_turns import counting_turns
from tests.support.servers import free_port

BURST = 4 * NEW_CONNECTIONS_PER_TURN
REQUEST = b"GET /%s HTTP/1.1\r\nHost: test\r\n\r\n"


@asynccontextmanager
async def counted_server(
    protocol: type[HttpToolsProtocol] = PacedHttpToolsProtocol,
) -> AsyncIterator[tuple[int, dict[str, int]]]:
    """A server whose app notes the turn of the loop in which each request (named by its
    path) began: its port, and those turns by name."""
    started: dict[str, int] = {}
    with counting_turns() as counter:

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            started[scope["path"].lstrip("/")] = counter.turn
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"2")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})

        config = uvicorn.Config(
            app,
            port=free_port(),
            http=protocol,
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
        instance = uvicorn.Server(config)
        task = asyncio.create_task(instance.serve())
        while not instance.started:
            await asyncio.sleep(0.01)  # waiting for the server's start, not timing anything
        try:
            yield config.port, started
        finally:
            instance.should_exit = True
            await task


def burst(port: int) -> list[socket.socket]:
    """BURST connections, each with its request (`/new-0`, `/new-1`, …), connected and
    sent without giving the loop a turn: the kernel completes the connections and keeps
    what they sent, the loop finds them all at once."""
    sockets = []
    for number in range(BURST):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(REQUEST % f"new-{number}".encode())
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


async def answer(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while not data.endswith(b"ok"):
        chunk = await loop.sock_recv(sock, 4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


async def started_per_turn(protocol: type[HttpToolsProtocol]) -> list[int]:
    async with counted_server(protocol) as (port, started):
        sockets = burst(port)
        try:
            answers = await asyncio.gather(*(answer(sock) for sock in sockets))
        finally:
            for sock in sockets:
                sock.close()
    assert all(data.startswith(b"HTTP/1.1 200") for data in answers)
    turns = sorted(started.values())
    return [turns.count(turn) for turn in sorted(set(turns))]


class TestBurstOfNewConnections:
    async def test_their_requests_begin_a_few_per_turn(self) -> None:
        per_turn = await started_per_turn(PacedHttpToolsProtocol)

        assert sum(per_turn) == BURST  # every one answered
        assert max(per_turn) <= NEW_CONNECTIONS_PER_TURN, per_turn

    async def test_unpaced_they_would_all_begin_in_one_turn(self) -> None:
        # What the test above guards against: uvicorn's own protocol, same burst.
        per_turn = await started_per_turn(HttpToolsProtocol)

        assert max(per_turn) > NEW_CONNECTIONS_PER_TURN, per_turn

    async def test_a_connection_already_served_does_not_wait_behind_them(self) -> None:
        async with counted_server() as (port, started):
            kept = socket.create_connection(("127.0.0.1", port))
            kept.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(kept, REQUEST % b"kept-first")
            await answer(kept)
            sockets = burst(port)
            kept.sendall(REQUEST % b"kept-again")  # sent after the whole burst
            try:
                await asyncio.gather(answer(kept), *(answer(sock) for sock in sockets))
            finally:
                for sock in [kept, *sockets]:
                    sock.close()

        burst_turns = sorted(turn for name, turn in started.items() if name.startswith("new-"))
        # In the first turn with any of the burst's, not after the burst's last.
        assert started["kept-again"] <= burst_turns[0], (started["kept-again"], burst_turns)
        assert burst_turns[-1] > burst_turns[0]


@pytest.mark.parametrize("pieces", [1, 3])
async def test_a_request_in_pieces_is_answered(pieces: int) -> None:
    """What a waiting connection sent is parsed whole once its turn comes, and the rest
    is read from then on."""
    request = REQUEST % b"pieces"
    async with counted_server() as (port, started):
        others = burst(port)
        sock = socket.create_connection(("127.0.0.1", port))
        size = len(request) // pieces + 1
        sock.sendall(request[:size])
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        for start in range(size, len(request), size):
            await asyncio.sleep(0)  # the rest in later turns
            await loop.sock_sendall(sock, request[start : start + size])
        try:
            data, *_ = await asyncio.gather(answer(sock), *(answer(s) for s in others))
        finally:
            for each in [sock, *others]:
                each.close()

    assert data.startswith(b"HTTP/1.1 200")
    assert "pieces" in started


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: \x00\r\n\r\n", b"\xff" * 9000],
)
async def test_garbage_that_waited_its_turn_gets_uvicorns_400(garbage: bytes) -> None:
    loop = asyncio.get_running_loop()
    async with counted_server() as (port, started):
        others = burst(port)
        hostile = socket.create_connection(("127.0.0.1", port))  # queued behind them
        hostile.sendall(garbage)
        hostile.setblocking(False)
        try:
            await asyncio.gather(*(answer(sock) for sock in others))
            reply = await loop.sock_recv(hostile, 4096)
        finally:
            for sock in [hostile, *others]:
                sock.close()

    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert len(started) == BURST  # the app never saw it
