"""At most a few refusals answered per turn of the event loop, the rest in later turns,
so that a burst of them cannot keep the loop from every other request.

A login flood arrives as hundreds of connections at once: the server reads them all in
one turn of the loop, and each refused login then runs to its end in one go (its answer,
its access-log line, its metrics), about 0.3 ms apiece. A `/whoami` that arrived with
them waited for all of them: 450 refusals held it for 0.15 s. Paced, it waits for the
refusals of one turn at most; the refusals still cost what they cost, spread over more
turns, and go out in the order they came, each a few milliseconds later.
"""

from __future__ import annotations

import asyncio
from collections import deque

# ~2.5 ms of the loop's time per turn at most: well under a request's usual latency.
REFUSALS_PER_TURN = 8


class RefusalPacer:
    """Gives each refusal its turn: `await pacer.turn()` before answering it."""

    def __init__(self, per_turn: int = REFUSALS_PER_TURN) -> None:
        self.per_turn = per_turn
        self._answered = 0  # in this turn of the loop
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._next_turn_scheduled = False

    async def turn(self) -> None:
        """Return at once while this turn has room and nobody waits; else in a later
        turn, first come first served."""
        if self._answered < self.per_turn and not self._waiting:
            self._answered += 1
            self._schedule_next_turn()
            return
        waiting = asyncio.get_running_loop().create_future()
        self._waiting.append(waiting)
        self._schedule_next_turn()
        await waiting  # cancelled (the server stopping): _next_turn skips it

    def _schedule_next_turn(self) -> None:
        # A callback scheduled now runs in the loop's next turn, after its I/O.
        if not self._next_turn_scheduled:
            self._next_turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._next_turn_scheduled = False
        self._answered = 0
        while self._waiting and self._answered < self.per_turn:
            waiting = self._waiting.popleft()
            if not waiting.done():
                waiting.set_result(None)
                self._answered += 1
        if self._waiting or self._answered:
            self._schedule_next_turn()
