"""Two refreshes of one refresh token at once (two tabs, a retry racing its original):
what a rotation scheme answers, and how many live refresh tokens it leaves behind.

Each race opens two connections first, then writes both requests in the same turn of
the event loop, so that they reach the server together; then each distinct successor
is refreshed once more, one after the other, to see which of them still works."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import uvloop

from authbench.httpload import Connection, HttpError
from authbench.refreshing import RefreshEndpoint, address


@dataclass(frozen=True)
class Race:
    statuses: tuple[int, int]  # the two concurrent refreshes' answers
    successors: int  # distinct refresh tokens the two answers held
    live: int  # of those, how many refreshed once more (200)
    next_token: str  # the newest live token: the next race starts from it

    @property
    def both_succeeded(self) -> bool:
        return self.statuses == (200, 200)


@dataclass(frozen=True)
class RaceSummary:
    races: int
    both_succeeded: int  # races in which both refreshes were answered 200
    two_live: int  # races that left two live successors (a forked session)
    statuses: dict[str, int]  # "200+401": how many races got that pair of answers

    def figures(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_both_ok": float(self.both_succeeded),
            f"{prefix}_two_live": float(self.two_live),
        }


async def race_once(base_url: str, endpoint: RefreshEndpoint, token: str) -> Race:
    host, port = address(base_url)
    first, second = Connection(host, port), Connection(host, port)
    try:
        await asyncio.gather(first.open(), second.open())
        answers = await asyncio.gather(
            endpoint.attempt(first, token), endpoint.attempt(second, token)
        )
    finally:
        await first.close()
        await second.close()
    successors = list(dict.fromkeys(new for _, new in answers if new is not None))
    newest: list[str] = []
    checker = Connection(host, port)
    try:
        for successor in successors:
            status, new = await endpoint.attempt(checker, successor)
            if new is not None:
                newest.append(new)
            elif status >= 500:
                raise HttpError(f"POST {endpoint.path} of a successor: {status}")
    finally:
        await checker.close()
    if not newest:
        raise HttpError(f"no live refresh token after a race ({answers[0][0]}, {answers[1][0]})")
    statuses = (answers[0][0], answers[1][0])
    return Race(statuses, len(successors), len(newest), newest[-1])


def race(base_url: str, endpoint: RefreshEndpoint, token: str, races: int) -> RaceSummary:
    """`races` races in a row, each from the newest token the previous one left."""

    async def run() -> list[Race]:
        done, current = [], token
        for _ in range(races):
            outcome = await race_once(base_url, endpoint, current)
            done.append(outcome)
            current = outcome.next_token
        return done

    outcomes = uvloop.run(run())
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        key = "+".join(str(status) for status in sorted(outcome.statuses))
        statuses[key] = statuses.get(key, 0) + 1
    return RaceSummary(
        races=len(outcomes),
        both_succeeded=sum(outcome.both_succeeded for outcome in outcomes),
        two_live=sum(outcome.live == 2 for outcome in outcomes),
        statuses=statuses,
    )
