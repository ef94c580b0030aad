"""uvicorn's HTTP protocol (httptools), parsing the first request of at most a few
connections per turn of the event loop (turn_pacing.py); the others wait their turn.

A login flood is hundreds of connections whose requests arrive at once. Unpaced, the
loop read them all in one turn, parsed them, and in the next ran each one's ASGI task
up to the first point where it could wait: 500 logins held the loop for 0.16 s before
any other request got its turn, a `/whoami` on a connection already open included.
Paced, what a new connection sent waits, unparsed, for a turn with room (reading from
it is paused meanwhile, so at most one read's worth is held). A connection that has
been admitted is then read and parsed as before, every turn, its later requests too:
so the connections of the clients already being served (keep-alive) never queue
behind a burst of new ones. Nothing is refused here; a new connection waits a few turns
at most under such a burst, about a millisecond each.
"""

from __future__ import annotations

import asyncio
from weakref import WeakKeyDictionary

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from authapi.turn_pacing import TurnPacer

NEW_CONNECTIONS_PER_TURN = 4

# One per event loop (per worker, and per test that runs a server).
_pacers: WeakKeyDictionary[asyncio.AbstractEventLoop, TurnPacer] = WeakKeyDictionary()


def _pacer(loop: asyncio.AbstractEventLoop) -> TurnPacer:
    pacer = _pacers.get(loop)
    if pacer is None:
        pacer = _pacers[loop] = TurnPacer(NEW_CONNECTIONS_PER_TURN)
    return pacer


class PacedHttpToolsProtocol(HttpToolsProtocol):
    """`authapi serve`'s protocol (`--http authapi.connection_pacing:PacedHttpToolsProtocol`
    for uvicorn itself)."""

    _admitted = False
    _held = b""  # what arrived before the connection's turn

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)
        elif self._held:
            self._held += data  # read before the pause took effect
        elif _pacer(self.loop).admit(self._parse_now):
            self._admitted = True
            super().data_received(data)
        else:
            self._held = data
            self.flow.pause_reading()  # nothing of uvicorn's resumes it before _parse_now

    def _parse_now(self) -> bool:
        if self.transport.is_closing():  # gone while it waited: takes no room
            return False
        self._admitted = True
        held, self._held = self._held, b""
        # Resumed first: the parser may pause reading again (a pipelined request).
        self.flow.resume_reading()
        super().data_received(held)
        return True
