"""At most a few of one kind of work started per turn of the event loop, the rest in
later turns, first come first served, so that a burst of it cannot keep the loop from
every other request.

A login flood arrives as hundreds of connections at once. Unpaced, the server read and
parsed them all in one turn of the loop, and each refused login then ran to its end in
one go (its answer, its access-log line, its metrics), about 0.3 ms apiece: a `/whoami`
that arrived with them waited for all of them (450 refusals held it for 0.15 s). Paced,
it waits for one turn's share at most; the burst still costs what it costs, spread over
more turns, each of its requests a few milliseconds later. Three pacers use this: the
reading of new connections (connection_pacing.py), and the logins let in to hash and
the refusals of a full hasher (hashing_admission.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class TurnPacer:
    """`per_turn` starts in each turn of the event loop: `admit()` for a callback,
    `await turn()` for a coroutine."""

    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn
        self._started = 0  # in this turn of the loop
        self._waiting: deque[Callable[[], bool]] = deque()
        self._next_turn_scheduled = False

    def admit(self, proceed: Callable[[], bool]) -> bool:
        """True: this turn has room and nobody waits, go on now (`proceed` is not
        called). False: `proceed()` is called in a later turn, in the order of
        arrival; it returns False when whoever waited is gone, and takes no room."""
        if self._started < self.per_turn and not self._waiting:
            self._started += 1
            self._schedule_next_turn()
            return True
        self._waiting.append(proceed)
        self._schedule_next_turn()
        return False

    async def turn(self, wanted: Callable[[], bool] = lambda: True) -> bool:
        """Return at once while this turn has room and nobody waits; else in a later
        turn, first come first served. `wanted()` is asked when the turn comes: False
        takes no room (the next in line goes in this turn) and is returned."""
        if not wanted():
            return False
        decided = asyncio.get_running_loop().create_future()

        def proceed() -> bool:
            if decided.done():  # cancelled: the server is stopping
                return False
            go = wanted()
            decided.set_result(go)
            return go

        if self.admit(proceed):
            return True
        went: bool = await decided
        return went

    def _schedule_next_turn(self) -> None:
        # A callback scheduled now runs in the loop's next turn, after its I/O.
        if not self._next_turn_scheduled:
            self._next_turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._next_turn_scheduled = False
        self._started = 0
        try:
            while self._waiting and self._started < self.per_turn:
                if self._waiting.popleft()():
                    self._started += 1
        finally:
            # Even past a callback that raised: the others still get their turns.
            if self._waiting or self._started:
                self._schedule_next_turn()
