"""turn_pacing.py: at most `per_turn` starts in each turn of the event loop, in the
order of arrival."""

from __future__ import annotations

import asyncio

import pytest

from authapi.turn_pacing import TurnPacer


async def turns_until(done: asyncio.Event, bound: int = 100) -> int:
    """Turns of the loop taken until `done` (each `sleep(0)` is one)."""
    for turn in range(bound):
        if done.is_set():
            return turn
        await asyncio.sleep(0)
    raise AssertionError(f"not done within {bound} turns")


async def test_a_turns_room_goes_at_once_the_rest_in_later_turns_in_order() -> None:
    pacer = TurnPacer(per_turn=2)
    began: list[int] = []

    async def one(number: int) -> None:
        await pacer.turn()
        began.append(number)

    tasks = [asyncio.create_task(one(number)) for number in range(7)]
    await asyncio.gather(*tasks)

    assert began == list(range(7))


async def test_admit_calls_back_those_that_waited_and_skips_the_gone() -> None:
    pacer = TurnPacer(per_turn=1)
    called: list[str] = []
    done = asyncio.Event()

    def waiting(name: str, *, gone: bool = False) -> bool:
        called.append(name)
        if name == "last":
            done.set()
        return not gone

    assert pacer.admit(lambda: pytest.fail("room: not called back"))
    assert not pacer.admit(lambda: waiting("gone", gone=True))
    assert not pacer.admit(lambda: waiting("second"))
    assert not pacer.admit(lambda: waiting("last"))
    turns = await turns_until(done)

    assert called == ["gone", "second", "last"]
    assert turns <= 3  # the gone one took no turn's room


async def test_a_callback_that_raises_strands_nobody(caplog: pytest.LogCaptureFixture) -> None:
    pacer = TurnPacer(per_turn=1)
    done = asyncio.Event()

    def raises() -> bool:
        raise RuntimeError("a protocol's bug")

    def last() -> bool:
        done.set()
        return True

    assert pacer.admit(lambda: True)
    assert not pacer.admit(raises)
    assert not pacer.admit(last)
    await turns_until(done)  # the loop logs the exception; the next one still goes

    assert "a protocol's bug" in caplog.text


async def test_a_cancelled_wait_takes_no_room() -> None:
    pacer = TurnPacer(per_turn=1)
    await pacer.turn()  # this turn's room
    cancelled = asyncio.create_task(pacer.turn())
    await asyncio.sleep(0)
    cancelled.cancel()
    began = asyncio.Event()

    async def after() -> None:
        await pacer.turn()
        began.set()

    task = asyncio.create_task(after())
    await turns_until(began, bound=5)
    await task
